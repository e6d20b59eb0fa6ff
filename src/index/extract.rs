//! What the index knows about one message, extracted from its bytes with mail-parser: decoded
//! headers (RFC 2047 encoded words, any charset mail-parser knows), the text of text/plain and
//! text/html bodies, attachment names (RFC 2231). Never fails: a message that does not parse is
//! indexed with whatever could be read, and the file is never modified.

use mail_parser::{Address, MessageParser, MimeHeaders};

/// The searchable content of one message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Message-ID without angle brackets ("" when absent).
    pub message_id: String,
    /// Decoded subject.
    pub subject: String,
    /// From: "Name <address>" entries, comma-separated.
    pub from: String,
    /// To.
    pub to: String,
    /// Cc.
    pub cc: String,
    /// Date header as Unix seconds, when present and readable.
    pub date: Option<i64>,
    /// Body text (plain parts, HTML converted to text), at most [`MAX_BODY`] bytes.
    pub body: String,
    /// Attachment file names.
    pub attachments: Vec<String>,
}

/// Body text kept per message: enough for any search and snippet, bounded for huge mails.
pub const MAX_BODY: usize = 256 * 1024;

/// Messages at least this big have their binary attachments' contents left out before parsing.
const ELIDE_FROM: usize = 32 * 1024;

/// The message without the contents of its base64-encoded non-text parts (attachments, images):
/// their headers stay (names, types: `attachment:` and `has:attachment` still work), their
/// encoded lines go. Nothing in those lines is ever indexed, but decoding megabytes of them is
/// most of the cost of parsing a big message. `None` when there is nothing to leave out.
///
/// Line-based and conservative: a part's lines are skipped only after a part header (following
/// a line that starts with `--`) that says `Content-Transfer-Encoding: base64` and a non-text
/// `Content-Type`; skipping ends at the next line starting with `-` (base64 never contains
/// one), so boundaries always survive.
pub fn without_binary_parts(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < ELIDE_FROM || !top_header_says_multipart(raw) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len().min(1 << 20));
    let mut elided = false;
    let mut lines = raw.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        out.extend_from_slice(line);
        if !line.starts_with(b"--") {
            continue;
        }
        // A boundary: read the part's header.
        let mut header: Vec<u8> = Vec::new();
        for h in lines.by_ref() {
            out.extend_from_slice(h);
            let blank = h.iter().all(|b| matches!(b, b'\r' | b'\n'));
            if blank {
                break;
            }
            header.extend(h.iter().map(u8::to_ascii_lowercase));
        }
        let header = String::from_utf8_lossy(&header);
        let unfolded = header
            .replace("\r\n ", " ")
            .replace("\n ", " ")
            .replace("\n\t", " ");
        let base64 = unfolded
            .lines()
            .any(|l| l.starts_with("content-transfer-encoding:") && l.contains("base64"));
        let text = unfolded.lines().any(|l| {
            l.starts_with("content-type:") && {
                let v = l["content-type:".len()..].trim_start();
                v.starts_with("text/") || v.starts_with("message/") || v.starts_with("multipart/")
            }
        });
        if base64 && !text {
            while let Some(next) = lines.peek() {
                if next.starts_with(b"-") {
                    break;
                }
                lines.next();
                elided = true;
            }
        }
    }
    elided.then_some(out)
}

/// True when the message's own header has a multipart Content-Type (only those carry
/// attachments as parts); looks at the header only, so a big single-part message costs nothing.
fn top_header_says_multipart(raw: &[u8]) -> bool {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(raw.len())
        .min(64 * 1024);
    let header = String::from_utf8_lossy(raw.get(..end).unwrap_or(raw)).to_ascii_lowercase();
    header.contains("multipart/")
}

/// Extracts a message. Never panics, whatever the bytes.
pub fn extract(raw: &[u8]) -> Extracted {
    let lighter = without_binary_parts(raw);
    let raw = lighter.as_deref().unwrap_or(raw);
    let Some(msg) = MessageParser::default().parse(raw) else {
        // Not even a header: index the start of the bytes as text.
        let mut body = String::from_utf8_lossy(raw.get(..MAX_BODY).unwrap_or(raw)).into_owned();
        truncate_at_char(&mut body, MAX_BODY);
        return Extracted {
            body,
            ..Default::default()
        };
    };
    let mut body = String::new();
    for i in 0..msg.text_body_count() {
        if body.len() >= MAX_BODY {
            break;
        }
        if let Some(text) = msg.body_text(i) {
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(&text);
        }
    }
    if body.trim().is_empty() {
        // Nothing parsed as text (a broken MIME structure, say): the raw text after the header
        // is better than nothing.
        body = raw_text_after_header(raw);
    }
    truncate_at_char(&mut body, MAX_BODY);
    let attachments = msg
        .attachments()
        .filter_map(|p| p.attachment_name().map(str::to_string))
        .collect();
    Extracted {
        message_id: msg
            .message_id()
            .map(|m| {
                m.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
            .unwrap_or_default(),
        subject: msg.subject().map(str::to_string).unwrap_or_default(),
        from: addresses(msg.from()),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        date: msg.date().map(|d| d.to_timestamp()),
        body,
        attachments,
    }
}

fn addresses(a: Option<&Address<'_>>) -> String {
    let Some(a) = a else {
        return String::new();
    };
    a.iter()
        .map(|addr| match (addr.name(), addr.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn raw_text_after_header(raw: &[u8]) -> String {
    let start = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .or_else(|| raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
        .unwrap_or(raw.len());
    let end = raw.len().min(start.saturating_add(MAX_BODY));
    String::from_utf8_lossy(raw.get(start..end).unwrap_or_default()).into_owned()
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mime")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn encoded_words_in_headers() {
        let e = extract(&fixture("encoded-words.eml"));
        assert_eq!(e.subject, "Grüße aus Köln ✓");
        assert!(
            e.from.contains("Jürgen Müller <jm@example.de>"),
            "{}",
            e.from
        );
        assert_eq!(e.message_id, "ew1@example.de");
        assert!(e.body.contains("Schöne Grüße"), "{}", e.body);
    }

    #[test]
    fn html_only_body_becomes_text() {
        let e = extract(&fixture("html-only.eml"));
        assert!(e.body.contains("quarterly report"), "{}", e.body);
        assert!(!e.body.contains("<p>"), "{}", e.body);
    }

    #[test]
    fn latin1_quoted_printable_and_attachment_names() {
        let e = extract(&fixture("latin1-attachment.eml"));
        assert!(e.body.contains("Café crème"), "{}", e.body);
        assert_eq!(e.attachments, vec!["Übersicht 2024.pdf".to_string()]);
    }

    #[test]
    fn broken_messages_give_what_parses() {
        let e = extract(&fixture("broken.eml"));
        assert!(e.subject.contains("broken"), "{e:?}");
        assert!(e.body.contains("still searchable"), "{e:?}");
        let e = extract(b"\x00\xff garbage without headers");
        assert_eq!(e.message_id, "");
    }

    fn with_attachment(name: &str, kb: usize) -> Vec<u8> {
        let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\n";
        let mut m = format!(
            "From: a@example.org\nSubject: report\nMessage-ID: <att@x>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain; charset=utf-8\n\nSee the attached quarterly figures.\n--b1\nContent-Type: application/pdf;\n name=\"{name}\"\nContent-Disposition: attachment; filename=\"{name}\"\nContent-Transfer-Encoding: base64\n\n"
        );
        while m.len() < kb * 1024 {
            m.push_str(line);
        }
        m.push_str("--b1\nContent-Type: text/plain\n\nA closing note.\n--b1--\n");
        m.into_bytes()
    }

    #[test]
    fn binary_attachments_are_left_out_before_parsing_without_losing_anything_searchable() {
        let big = with_attachment("figures.pdf", 200);
        let light = without_binary_parts(&big).expect("something to leave out");
        assert!(light.len() < 2048, "{}", light.len());
        let (full, fast) = (
            {
                let msg = MessageParser::default().parse(&big[..]).unwrap();
                (msg.attachments().count(), msg.text_body_count())
            },
            extract(&big),
        );
        assert_eq!(full, (1, 2));
        assert_eq!(fast.attachments, vec!["figures.pdf".to_string()]);
        assert!(fast.body.contains("quarterly figures") && fast.body.contains("closing note"));
        assert_eq!(fast.message_id, "att@x");
        // Small messages and messages without binary parts are parsed as they are.
        assert!(without_binary_parts(&with_attachment("a.pdf", 1)).is_none());
        let text_only = format!("Subject: x\n\n{}", "plain text line\n".repeat(4000));
        assert!(without_binary_parts(text_only.as_bytes()).is_none());
    }

    proptest! {
        #[test]
        fn leaving_out_binary_parts_keeps_every_other_line(
            parts in proptest::collection::vec((any::<bool>(), 1usize..40), 1..6)
        ) {
            // Text and binary parts in any order: the text lines and every boundary survive.
            let mut m = String::from("Content-Type: multipart/mixed; boundary=\"q\"\n\n");
            for (i, (binary, n)) in parts.iter().enumerate() {
                m.push_str("--q\n");
                if *binary {
                    m.push_str("Content-Type: image/png\nContent-Transfer-Encoding: base64\n\n");
                    for _ in 0..*n * 40 {
                        m.push_str("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n");
                    }
                } else {
                    m.push_str("Content-Type: text/plain\n\n");
                    for j in 0..*n {
                        m.push_str(&format!("text {i} line {j}\n"));
                    }
                }
            }
            m.push_str("--q--\n");
            let out = without_binary_parts(m.as_bytes()).unwrap_or_else(|| m.clone().into_bytes());
            let out = String::from_utf8(out).unwrap();
            for line in m.lines().filter(|l| !l.starts_with("iVBOR")) {
                prop_assert!(out.contains(line), "lost {line:?}");
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = extract(&bytes);
        }
    }
}
