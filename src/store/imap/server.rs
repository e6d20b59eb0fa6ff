//! What differs between IMAP servers, in one place: the behaviours arctern has met and where each
//! is handled, and the one the engine must know before it names a folder, the personal
//! namespace (RFC 2342), read here after login.
//!
//! | behaviour | seen on | handled by |
//! |---|---|---|
//! | personal folders under the prefix `INBOX.`, `.` as delimiter | Courier 5.0; Dovecot with `namespace inbox { prefix = INBOX. }` | [`ServerNames`](crate::names::ServerNames) from NAMESPACE: local names never show the prefix, names sent get it |
//! | no CONDSTORE/QRESYNC | Courier 5.0 | full-scan resync (`engine::folder`), unchanged-folder fingerprints from STATUS |
//! | CREATE of `A/B` creates `A`, later `CREATE A` answered `NO Mailbox already exists` without `[ALREADYEXISTS]` | Cyrus 3.6 | [`ImapConn::create`] asks LIST; the engine lists again after creating folders and syncs what appeared in the same run |
//! | raw 8-bit header bytes stored as `X` | Cyrus 3.6 | push records size and digest of what was sent; `verify` reports the copy as altered |
//! | a message containing NUL refused (`NO Message contains NUL`) | Cyrus 3.6 | refused uploads recorded once (`refused_uploads`), not retried while the file is unchanged |
//! | bare CR removed, final newline added on APPEND | Courier 5.0 | `verify` reports altered copies by Message-ID and size |
//! | `LOGIN-DELAY` in POP3 CAPA | Courier 5.0 | said once (`store::pop3`) |
//! | every message in several folders (labels), `X-GM-MSGID` names it; CONDSTORE without QRESYNC; system folders named in the user's language | Gmail (scripted peer, tests/integration/support/fakegmail.rs) | label model (`engine::labels`): linked by X-GM-MSGID, folders found by SPECIAL-USE; CONDSTORE-only resync proves completeness by the message count |
//! | `EMAILID` (RFC 8474 OBJECTID) | Cyrus 3.x, Fastmail | label links by EMAILID where the account has a `\All` folder |
//! | parse-breaking answers imap-proto 0.17 cannot read (NAMESPACE) | all servers with NAMESPACE | read raw here, before any other command |
//!
//! NAMESPACE is read with our own reader on the transport under async-imap, because imap-proto
//! 0.17 has no parser for it: a `* NAMESPACE` answer through async-imap is a parse error, which
//! poisons the connection. It is sent right after the capabilities are read, when async-imap's
//! buffer is empty (every answer so far ended with its tagged line and the server has nothing
//! unsolicited to say in the authenticated state).

use super::*;
use crate::names::{FolderName, ServerNames};
use tokio::io::AsyncReadExt;

/// The tag of our own NAMESPACE command (async-imap's tags are `A<n>`).
const NAMESPACE_TAG: &str = "arcternns";
/// The most a NAMESPACE answer may take, in bytes (real ones are under 200).
const MAX_NAMESPACE_ANSWER: usize = 64 * 1024;

/// The personal namespace of a NAMESPACE answer (`* NAMESPACE (("INBOX." ".")) NIL NIL`, the
/// line after `* NAMESPACE `): its first entry's prefix and delimiter, `None` for `NIL` or an
/// answer that does not parse (then names are used as LIST gives them).
pub fn parse_personal_namespace(rest: &str) -> Option<(String, Option<char>)> {
    let mut tokens = Tokens {
        text: rest.trim_start(),
    };
    tokens.open()?;
    tokens.open()?;
    let prefix = tokens.string()?;
    let delimiter = tokens.string_or_nil()?;
    Some((prefix, delimiter.and_then(|d| d.chars().next())))
}

/// A reader of the few IMAP tokens a NAMESPACE answer uses: `(`, quoted strings, NIL.
struct Tokens<'a> {
    text: &'a str,
}

impl Tokens<'_> {
    fn open(&mut self) -> Option<()> {
        self.text = self.text.trim_start().strip_prefix('(')?;
        Some(())
    }

    fn string(&mut self) -> Option<String> {
        let body = self.text.trim_start().strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => {
                    self.text = body.get(i.saturating_add(1)..)?;
                    return Some(out);
                }
                _ => out.push(c),
            }
        }
        None
    }

    fn string_or_nil(&mut self) -> Option<Option<String>> {
        let t = self.text.trim_start();
        if t.get(..3)
            .is_some_and(|head| head.eq_ignore_ascii_case("NIL"))
        {
            self.text = &t[3..];
            return Some(None);
        }
        self.string().map(Some)
    }
}

impl ImapConn {
    /// How this server names folders: its personal namespace and delimiter when it said them
    /// (NAMESPACE), else the delimiter `fallback_delimiter` (from LIST) and no prefix.
    pub fn server_names(&self, fallback_delimiter: Option<char>) -> ServerNames {
        match &self.personal_namespace {
            Some((prefix, delimiter)) => ServerNames::new(prefix, delimiter.or(fallback_delimiter)),
            None => ServerNames::flat(fallback_delimiter),
        }
    }

    /// Sends NAMESPACE (when offered) and keeps the personal namespace. A refusal or an answer
    /// we cannot read leaves names as LIST gives them (said in the debug log); a lost connection
    /// is an error.
    pub(super) async fn read_namespace(&mut self) -> Result<(), ImapError> {
        if !self.has("NAMESPACE") {
            return Ok(());
        }
        let timeout = self.timeout;
        let exchange = async {
            let stream = self.session.get_mut();
            stream
                .write_all(format!("{NAMESPACE_TAG} NAMESPACE\r\n").as_bytes())
                .await?;
            stream.flush().await?;
            let mut personal = None;
            let mut total = 0usize;
            loop {
                let line = read_line(stream, &mut total).await?;
                if let Some(rest) = strip_prefix_ci(&line, "* NAMESPACE ") {
                    personal = parse_personal_namespace(rest);
                    if personal.is_none() {
                        tracing::debug!("NAMESPACE answer not understood: {line:?}");
                    }
                } else if let Some(rest) = line.strip_prefix(NAMESPACE_TAG) {
                    let ok = strip_prefix_ci(rest.trim_start(), "OK").is_some();
                    if !ok {
                        tracing::debug!("NAMESPACE refused: {}", rest.trim());
                    }
                    return Ok::<_, std::io::Error>(personal.filter(|_| ok));
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => self.poison(ImapError::Timeout {
                command: "NAMESPACE".into(),
                secs: timeout.as_secs(),
            }),
            Ok(Err(e)) => self.poison(ImapError::Connection {
                command: "NAMESPACE".into(),
                message: e.to_string(),
            }),
            Ok(Ok(personal)) => {
                if let Some((prefix, delimiter)) = &personal {
                    tracing::debug!(prefix, ?delimiter, "personal namespace");
                }
                self.personal_namespace = personal.filter(|(prefix, _)| !prefix.is_empty());
                Ok(())
            }
        }
    }
}

/// A server's selectable folders by canonical name, as [`ImapConn::folders`] lists them.
#[derive(Debug)]
pub struct ServerFolders {
    /// How the server spells names (for folders to create).
    pub names: ServerNames,
    /// Canonical name → LIST entry.
    pub by_name: BTreeMap<FolderName, ListEntry>,
    /// Wire names left out (escaped for display), with the reason.
    pub skipped: Vec<(String, String)>,
}

impl ServerFolders {
    /// Canonical name → wire name.
    pub fn wire_names(&self) -> BTreeMap<FolderName, String> {
        self.by_name
            .iter()
            .map(|(name, entry)| (name.clone(), entry.wire_name.clone()))
            .collect()
    }

    /// The folder with every message (SPECIAL-USE `\All`, Gmail's "All Mail"), when the server
    /// has one: then it has the label model, where the other folders show the same messages
    /// again (Gmail's labels; Dovecot's virtual folders).
    pub fn all_mail(&self) -> Option<&FolderName> {
        self.by_name
            .iter()
            .find(|(_, e)| e.special_use == Some(crate::model::SpecialUse::All))
            .map(|(n, _)| n)
    }
}

impl ImapConn {
    /// Lists the server's folders and names them canonically: the personal prefix dropped,
    /// personal folders first (a shared folder whose whole name equals a personal folder's
    /// without the prefix is the one left out), names that are no safe folder name left out.
    pub async fn folders(&mut self) -> Result<ServerFolders, ImapError> {
        let entries = self.list().await?;
        let names = self.server_names(entries.iter().find_map(|e| e.delimiter));
        let mut out = ServerFolders {
            by_name: BTreeMap::new(),
            skipped: Vec::new(),
            names,
        };
        let mut ordered: Vec<ListEntry> = entries.into_iter().filter(|e| e.selectable).collect();
        ordered.sort_by_key(|e| !out.names.is_personal(&e.wire_name));
        for entry in ordered {
            let shown = entry.wire_name.escape_debug().to_string();
            match out.names.decode(&entry.wire_name, entry.delimiter) {
                Ok(name) if out.by_name.contains_key(&name) => out.skipped.push((
                    shown,
                    format!("outside the personal namespace, its name is that of the personal folder {name}"),
                )),
                Ok(name) => {
                    out.by_name.insert(name, entry);
                }
                Err(e) => out.skipped.push((shown, e.to_string())),
            }
        }
        Ok(out)
    }
}

fn strip_prefix_ci<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &line[prefix.len()..])
}

/// Reads one answer line (without CRLF), a literal (`{n}` at the end of a line) joined in as a
/// quoted string; byte by byte, so nothing after the tagged line is taken from async-imap.
async fn read_line(
    stream: &mut Box<dyn Transport>,
    total: &mut usize,
) -> Result<String, std::io::Error> {
    let too_long = || std::io::Error::other("NAMESPACE answer too long");
    let mut line: Vec<u8> = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        *total = total.saturating_add(1);
        if *total > MAX_NAMESPACE_ANSWER {
            return Err(too_long());
        }
        if byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let literal = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.strip_suffix('}'))
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok());
        let Some(n) = literal else {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        };
        if total.saturating_add(n) > MAX_NAMESPACE_ANSWER {
            return Err(too_long());
        }
        let cut = line.iter().rposition(|b| *b == b'{').unwrap_or(line.len());
        line.truncate(cut);
        let mut body = vec![0u8; n];
        stream.read_exact(&mut body).await?;
        *total = total.saturating_add(n);
        line.push(b'"');
        for b in body {
            if b == b'"' || b == b'\\' {
                line.push(b'\\');
            }
            line.push(b);
        }
        line.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_namespaces_as_servers_send_them() {
        let p = parse_personal_namespace;
        assert_eq!(
            p(r##"(("INBOX." ".")) NIL (("#shared." ".")("shared." "."))"##),
            Some(("INBOX.".into(), Some('.')))
        );
        assert_eq!(
            p(r#"(("" "/")) (("Other Users/" "/")) NIL"#),
            Some((String::new(), Some('/')))
        );
        assert_eq!(p(r#"(("" NIL)) NIL NIL"#), Some((String::new(), None)));
        assert_eq!(
            p(r#"(("Mail\\" "\\" "X-PARAM" ("a"))) NIL NIL"#),
            Some(("Mail\\".into(), Some('\\')))
        );
        assert_eq!(p("NIL NIL NIL"), None);
        assert_eq!(p("(("), None);
        assert_eq!(p(r#"(("unterminated"#), None);
        assert_eq!(p(""), None);
    }
}
