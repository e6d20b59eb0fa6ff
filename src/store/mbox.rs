//! The mbox file format, read as a stream and written as mboxrd.
//!
//! Reading: messages start at a `From ` line at the start of the file or after a blank line
//! (an unquoted `From ` inside a body, as sloppy writers leave it, does not split a message);
//! `>From ` quoting is undone as mboxrd (`>>From ` → `>From `) or mboxo (only `>From `) says;
//! a `Content-Length:` header is honoured when the bytes it counts end exactly at a message
//! boundary (mboxcl2), and ignored otherwise. The blank line before the next `From ` line is the
//! separator, not part of the message. One message is held in memory at a time, so a 10 GB file
//! is read in the memory of its largest message.
//!
//! Writing (mboxrd): every line matching `>*From ` gets one more `>`, a message not ending in a
//! newline gets one, and a blank line follows each message, so reading what was written gives
//! back every message byte for byte (except that added newline).
//!
//! Also here, because they are facts of the formats other programs write: Google Takeout's
//! `X-Gmail-Labels` header, the mbox status headers (`Status`, `X-Status`, Thunderbird's
//! `X-Mozilla-Status`) and Thunderbird's per-folder file names (`Archives.sbd/2019`).

use crate::model::{Flag, Flags};
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// How `>From ` lines were quoted by the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Quoting {
    /// Every `>*From ` line was given one more `>` (mutt, Google Takeout, arctern).
    #[default]
    Mboxrd,
    /// Only `From ` lines were quoted (`>From `); `>>From ` is left as it is.
    Mboxo,
}

/// One message read from an mbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MboxMessage {
    /// The `From ` line that started it (without the line end); empty when the file did not
    /// start with one.
    pub from_line: String,
    /// Its line number in the file (1-based).
    pub line: u64,
    /// Its byte offset in the file.
    pub offset: u64,
    /// The message as it is to be stored.
    pub bytes: Vec<u8>,
    /// What was odd about it (stored anyway), for the report.
    pub problem: Option<String>,
}

/// A streaming mbox reader: an iterator of messages.
pub struct MboxReader<R: BufRead> {
    input: R,
    quoting: Quoting,
    /// The `From ` line that starts the next message, with its line number and offset.
    next_from: Option<(Vec<u8>, u64, u64)>,
    started: bool,
    done: bool,
    line_no: u64,
    offset: u64,
}

fn is_from_line(line: &[u8]) -> bool {
    line.starts_with(b"From ")
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Undoes one level of `From ` quoting on a line.
fn unquote(line: &[u8], quoting: Quoting) -> &[u8] {
    let quoted = match quoting {
        Quoting::Mboxrd => {
            let gts = line.iter().take_while(|b| **b == b'>').count();
            gts > 0 && line.get(gts..).is_some_and(is_from_line)
        }
        Quoting::Mboxo => line.starts_with(b">From "),
    };
    if quoted {
        line.get(1..).unwrap_or(line)
    } else {
        line
    }
}

/// The value of a `Content-Length` header in a header block, if one is there and valid.
fn content_length(header: &[u8]) -> Option<u64> {
    crate::message::header(header, "content-length")?
        .parse()
        .ok()
}

impl<R: BufRead> MboxReader<R> {
    /// A reader over `input`.
    pub fn new(input: R, quoting: Quoting) -> MboxReader<R> {
        MboxReader {
            input,
            quoting,
            next_from: None,
            started: false,
            done: false,
            line_no: 0,
            offset: 0,
        }
    }

    /// Bytes consumed so far (for a progress bar).
    pub fn position(&self) -> u64 {
        self.offset
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        let n = self.input.read_until(b'\n', buf)?;
        self.line_no = self.line_no.saturating_add(1);
        self.offset = self.offset.saturating_add(n as u64);
        Ok(n > 0)
    }

    /// True when the buffered input continues with a message boundary: nothing, a `From `
    /// line, or a blank line and then one of those.
    fn at_boundary(&mut self) -> std::io::Result<bool> {
        let buf = self.input.fill_buf()?;
        let rest = buf
            .strip_prefix(b"\r\n")
            .or_else(|| buf.strip_prefix(b"\n"))
            .unwrap_or(buf);
        Ok(buf.is_empty() || rest.is_empty() || rest.starts_with(b"From "))
    }

    fn next_message(&mut self) -> std::io::Result<Option<MboxMessage>> {
        let mut line = Vec::new();
        let mut problem = None;
        if !self.started {
            self.started = true;
            loop {
                if !self.read_line(&mut line)? {
                    return Ok(None);
                }
                if !is_blank(&line) {
                    break;
                }
            }
            let offset = self.offset.saturating_sub(line.len() as u64);
            if is_from_line(&line) {
                self.next_from = Some((line.clone(), self.line_no, offset));
                line.clear();
            } else {
                problem = Some("the file does not start with a From line".to_string());
                self.next_from = Some((Vec::new(), self.line_no, offset));
            }
        }
        let Some((from, from_line_no, offset)) = self.next_from.take() else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        // A first line already read (a file not starting with `From `) is the message's.
        let mut pending = (!line.is_empty()).then_some(line);
        let mut in_header = true;
        let mut prev_blank = false;
        let mut line = Vec::new();
        loop {
            let got = match pending.take() {
                Some(l) => {
                    line = l;
                    true
                }
                None => self.read_line(&mut line)?,
            };
            if !got {
                self.done = true;
                break;
            }
            if prev_blank && is_from_line(&line) {
                let at = self.offset.saturating_sub(line.len() as u64);
                self.next_from = Some((line.clone(), self.line_no, at));
                break;
            }
            prev_blank = is_blank(&line);
            bytes.extend_from_slice(unquote(&line, self.quoting));
            if in_header && prev_blank {
                in_header = false;
                if let Some(len) = content_length(&bytes) {
                    self.read_counted_body(&mut bytes, len, &mut prev_blank)?;
                }
            }
        }
        // The blank line before the next `From ` (or the end) is the separator.
        if bytes.ends_with(b"\r\n\r\n") {
            bytes.truncate(bytes.len().saturating_sub(2));
        } else if bytes.ends_with(b"\n\n") {
            bytes.truncate(bytes.len().saturating_sub(1));
        }
        if problem.is_none() && !looks_like_header(&bytes) {
            problem = Some("it does not start with a header field".to_string());
        }
        Ok(Some(MboxMessage {
            from_line: String::from_utf8_lossy(from.trim_ascii_end()).into_owned(),
            line: from_line_no,
            offset,
            bytes,
            problem,
        }))
    }

    /// Reads a body of `len` bytes (`Content-Length`) when it ends at a message boundary;
    /// otherwise the bytes read are scanned line by line as usual.
    fn read_counted_body(
        &mut self,
        bytes: &mut Vec<u8>,
        len: u64,
        prev_blank: &mut bool,
    ) -> std::io::Result<()> {
        // Never trust a length to allocate: read in pieces, at most what is there.
        let mut body = Vec::new();
        let got = (&mut self.input).take(len).read_to_end(&mut body)?;
        self.offset = self.offset.saturating_add(got as u64);
        if got as u64 == len && self.at_boundary()? {
            self.line_no = self
                .line_no
                .saturating_add(body.iter().filter(|b| **b == b'\n').count() as u64);
            *prev_blank = body.is_empty() || body.ends_with(b"\n\n");
            bytes.extend_from_slice(&body);
            // The separator blank line, if any, is read as the next line and dropped.
            return Ok(());
        }
        // Not a valid length: treat the bytes as lines (quoting undone, `From ` lines split).
        // They are already consumed, so any `From ` boundary inside is kept in the message;
        // say so rather than guess.
        for l in body.split_inclusive(|b| *b == b'\n') {
            self.line_no = self.line_no.saturating_add(1);
            bytes.extend_from_slice(unquote(l, self.quoting));
            *prev_blank = is_blank(l);
        }
        Ok(())
    }
}

fn looks_like_header(bytes: &[u8]) -> bool {
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let Some(colon) = first.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0
        && first
            .get(..colon)
            .is_some_and(|f| f.iter().all(|b| b.is_ascii_graphic()))
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = std::io::Result<MboxMessage>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done && self.next_from.is_none() {
            return None;
        }
        self.next_message().transpose()
    }
}

/// Writes one message as mboxrd: its `From ` line, the message with `>*From ` lines quoted,
/// a newline if it lacked one, and the blank separator line. Returns whether a newline had to
/// be added (the only way the written message differs from `bytes`).
pub fn write_message(out: &mut impl Write, from_line: &str, bytes: &[u8]) -> std::io::Result<bool> {
    out.write_all(from_line.as_bytes())?;
    out.write_all(b"\n")?;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let gts = line.iter().take_while(|b| **b == b'>').count();
        if line.get(gts..).is_some_and(is_from_line) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
    }
    let added = !bytes.ends_with(b"\n");
    if added {
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    Ok(added)
}

/// A `From ` line for a message: `From <sender> <asctime date>` (the sender from Return-Path
/// or From, `MAILER-DAEMON` when there is none usable).
pub fn from_line(bytes: &[u8], when: jiff::Timestamp) -> String {
    let sender = ["return-path", "from"]
        .iter()
        .filter_map(|h| crate::message::header(bytes, h))
        .find_map(|v| {
            let addr = match (v.rfind('<'), v.rfind('>')) {
                (Some(a), Some(b)) if a < b => v.get(a.saturating_add(1)..b)?.to_string(),
                _ => v.split_whitespace().find(|w| w.contains('@'))?.to_string(),
            };
            (!addr.is_empty() && addr.chars().all(|c| c.is_ascii_graphic())).then_some(addr)
        })
        .unwrap_or_else(|| "MAILER-DAEMON".to_string());
    let date = when
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a %b %e %H:%M:%S %Y");
    format!("From {sender} {date}")
}

/// What a Google Takeout label stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Label {
    /// A folder (`Inbox` → `INBOX`, `Sent`, `Archived` → `Archive`, a user label `Work/2020`).
    Folder(String),
    /// A flag rather than a folder (`Starred` → `\Flagged`, `Opened` → `\Seen`).
    Flag(Flag),
    /// Neither (`Unread`, `Important`, Gmail's categories).
    Ignored,
}

/// The labels of an `X-Gmail-Labels` value: comma-separated, a label with a comma inside
/// written in double quotes.
pub fn takeout_labels(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur));
            }
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What one Takeout label means here.
pub fn label_meaning(label: &str) -> Label {
    match label {
        "Inbox" => Label::Folder("INBOX".into()),
        "Sent" | "Drafts" | "Spam" | "Trash" | "Chat" => Label::Folder(label.into()),
        "Archived" => Label::Folder("Archive".into()),
        "Starred" => Label::Flag(Flag::Flagged),
        "Opened" => Label::Flag(Flag::Seen),
        "Unread" | "Important" => Label::Ignored,
        l if l.starts_with("Category ") => Label::Ignored,
        l => Label::Folder(l.into()),
    }
}

/// The folders and flags of a Takeout message (`X-Gmail-Labels`); a message whose labels name
/// no folder goes to `Archive` (Gmail's All Mail).
pub fn takeout_placement(value: &str) -> (Vec<String>, Flags) {
    let mut folders = Vec::new();
    let mut flags = Flags::new();
    for l in takeout_labels(value) {
        match label_meaning(&l) {
            Label::Folder(f) => {
                if !folders.contains(&f) {
                    folders.push(f);
                }
            }
            Label::Flag(f) => {
                flags.insert(f);
            }
            Label::Ignored => {}
        }
    }
    if folders.is_empty() {
        folders.push("Archive".into());
    }
    (folders, flags)
}

/// Flags from the status headers mail programs write into mbox files: `Status: RO` (`R` read),
/// `X-Status: AFTD` (answered, flagged, draft, deleted) and Thunderbird's hexadecimal
/// `X-Mozilla-Status` (0x1 read, 0x2 replied, 0x4 flagged, 0x1000 forwarded). The second value
/// is true when Thunderbird marked it expunged (0x8): deleted, awaiting compaction.
pub fn status_flags(bytes: &[u8]) -> (Flags, bool) {
    let mut flags = Flags::new();
    if let Some(s) = crate::message::header(bytes, "status")
        && s.contains('R')
    {
        flags.insert(Flag::Seen);
    }
    if let Some(x) = crate::message::header(bytes, "x-status") {
        for (c, f) in [
            ('A', Flag::Answered),
            ('F', Flag::Flagged),
            ('T', Flag::Draft),
            ('D', Flag::Deleted),
        ] {
            if x.contains(c) {
                flags.insert(f);
            }
        }
    }
    let mut expunged = false;
    if let Some(m) = crate::message::header(bytes, "x-mozilla-status")
        && let Ok(bits) = u32::from_str_radix(m.trim(), 16)
    {
        for (bit, f) in [
            (0x1, Flag::Seen),
            (0x2, Flag::Answered),
            (0x4, Flag::Flagged),
            (0x1000, Flag::Forwarded),
        ] {
            if bits & bit != 0 {
                flags.insert(f);
            }
        }
        expunged = bits & 0x8 != 0;
    }
    (flags, expunged)
}

/// The folder an mbox file stands for by its name, as Thunderbird lays them out: the file name
/// without `.mbox`/`.mbx`, under the parents whose directories end in `.sbd`
/// (`Local Folders/Archives.sbd/2019` → `Archives/2019`); `Inbox` is INBOX.
pub fn folder_of_file(path: &Path) -> String {
    let stem = |name: &str| -> String {
        let lower = name.to_ascii_lowercase();
        for ext in [".mbox", ".mbx"] {
            if lower.ends_with(ext) {
                return name
                    .get(..name.len().saturating_sub(ext.len()))
                    .unwrap_or(name)
                    .to_string();
            }
        }
        name.to_string()
    };
    let mut parts = vec![stem(
        &path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )];
    let mut dir = path.parent();
    while let Some(d) = dir {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.strip_suffix(".sbd") {
            Some(parent) => parts.insert(0, parent.to_string()),
            None => break,
        }
        dir = d.parent();
    }
    if parts.len() == 1
        && parts
            .first()
            .is_some_and(|p| p.eq_ignore_ascii_case("inbox"))
    {
        return "INBOX".into();
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all(text: &[u8], quoting: Quoting) -> Vec<MboxMessage> {
        MboxReader::new(text, quoting)
            .collect::<std::io::Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn splits_at_from_lines_after_blank_lines_and_undoes_quoting() {
        let mbox = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From here\n>>From there\nFrom unquoted inside\n\nFrom b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nlast\n";
        let rd = read_all(mbox, Quoting::Mboxrd);
        assert_eq!(rd.len(), 2);
        assert_eq!(rd[0].from_line, "From a@x Mon Jan  1 00:00:00 2024");
        assert_eq!(
            rd[0].bytes,
            b"Subject: one\n\nbody\nFrom here\n>From there\nFrom unquoted inside\n".to_vec()
        );
        assert_eq!(rd[1].bytes, b"Subject: two\n\nlast\n".to_vec());
        assert_eq!((rd[1].line, rd[1].offset), (9, 99));
        let o = read_all(mbox, Quoting::Mboxo);
        assert!(o[0].bytes.windows(12).any(|w| w == b">>From there"));
        assert!(rd.iter().all(|m| m.problem.is_none()));
    }

    #[test]
    fn content_length_is_used_only_when_it_ends_at_a_boundary() {
        let good = b"From a@x Mon Jan  1 00:00:00 2024\nContent-Length: 27\n\nline\n\nFrom inside the body\n\nFrom b@x Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n";
        let m = read_all(good, Quoting::Mboxrd);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m[0].bytes,
            b"Content-Length: 27\n\nline\n\nFrom inside the body\n".to_vec()
        );
        // A wrong length is ignored: the From line after the blank line splits.
        let bad = b"From a@x Mon Jan  1 00:00:00 2024\nContent-Length: 3\n\nline\n\nFrom b@x Mon Jan  1 00:00:00 2024\nSubject: b\n\nx\n";
        let m = read_all(bad, Quoting::Mboxrd);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].bytes, b"Content-Length: 3\n\nline\n".to_vec());
        // A huge length never allocates more than the file holds.
        let huge = b"From a@x Mon Jan  1 00:00:00 2024\nContent-Length: 99999999999\n\nx\n";
        assert_eq!(read_all(huge, Quoting::Mboxrd).len(), 1);
    }

    #[test]
    fn odd_files_are_read_and_named() {
        let no_from = b"Subject: x\n\nbody\n";
        let m = read_all(no_from, Quoting::Mboxrd);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].bytes, no_from.to_vec());
        assert!(m[0].problem.as_deref().unwrap().contains("From line"));
        let garbage = b"From x Mon Jan  1 00:00:00 2024\n\x00\x01 not a header\n";
        let m = read_all(garbage, Quoting::Mboxrd);
        assert!(m[0].problem.as_deref().unwrap().contains("header"));
        assert!(read_all(b"", Quoting::Mboxrd).is_empty());
        assert!(read_all(b"\n\n", Quoting::Mboxrd).is_empty());
    }

    proptest! {
        /// What `write_message` writes, the reader gives back byte for byte (messages ending in
        /// a newline), however many `From ` and `>From ` lines, blank lines or CRLFs they hold.
        #[test]
        fn written_messages_read_back_byte_for_byte(
            messages in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        Just("From x".to_string()),
                        Just(">From y".to_string()),
                        Just(">>>From z".to_string()),
                        Just(String::new()),
                        Just("\r".to_string()),
                        "[ -~]{0,20}",
                    ],
                    0..12,
                ),
                1..5,
            )
        ) {
            let bodies: Vec<Vec<u8>> = messages
                .iter()
                .map(|lines| {
                    let mut b = b"Subject: t\n\n".to_vec();
                    for l in lines {
                        b.extend_from_slice(l.as_bytes());
                        b.push(b'\n');
                    }
                    b
                })
                .collect();
            let mut out = Vec::new();
            for b in &bodies {
                write_message(&mut out, "From a@b Mon Jan  1 00:00:00 2024", b).unwrap();
            }
            let back: Vec<Vec<u8>> = read_all(&out, Quoting::Mboxrd).into_iter().map(|m| m.bytes).collect();
            prop_assert_eq!(back, bodies);
        }
    }

    #[test]
    fn takeout_labels_become_folders_and_flags() {
        assert_eq!(
            takeout_labels("Inbox,\"Work, old\",Opened"),
            vec!["Inbox", "Work, old", "Opened"]
        );
        let (folders, flags) =
            takeout_placement("Archived,Sent,Opened,Starred,Category Updates,Important,Work/2020");
        assert_eq!(folders, vec!["Archive", "Sent", "Work/2020"]);
        assert!(flags.contains(&Flag::Seen) && flags.contains(&Flag::Flagged));
        assert_eq!(takeout_placement("Unread,Important").0, vec!["Archive"]);
        assert_eq!(takeout_placement("Inbox,Unread").0, vec!["INBOX"]);
    }

    #[test]
    fn status_headers_and_thunderbird_names() {
        let (f, gone) = status_flags(b"Status: RO\nX-Status: AF\n\nx\n");
        assert!(
            f.contains(&Flag::Seen) && f.contains(&Flag::Answered) && f.contains(&Flag::Flagged)
        );
        assert!(!gone);
        let (f, gone) = status_flags(b"X-Mozilla-Status: 0009\n\nx\n");
        assert!(f.contains(&Flag::Seen) && gone);
        assert_eq!(folder_of_file(Path::new("/p/Local Folders/Inbox")), "INBOX");
        assert_eq!(folder_of_file(Path::new("/p/Local Folders/Sent")), "Sent");
        assert_eq!(
            folder_of_file(Path::new("/p/Local Folders/Archives.sbd/2019")),
            "Archives/2019"
        );
        assert_eq!(
            folder_of_file(Path::new("/tmp/Takeout/All mail.mbox")),
            "All mail"
        );
    }

    #[test]
    fn from_lines_name_the_sender_and_date() {
        let t: jiff::Timestamp = "2024-01-05T10:20:30Z".parse().unwrap();
        assert_eq!(
            from_line(b"From: Ann <ann@example.org>\n\nx\n", t),
            "From ann@example.org Fri Jan  5 10:20:30 2024"
        );
        assert_eq!(
            from_line(b"Subject: x\n\n", t),
            "From MAILER-DAEMON Fri Jan  5 10:20:30 2024"
        );
    }
}
