//! The POP3 wire format, pure (no I/O): status lines, CAPA (RFC 2449), UIDL and LIST listings,
//! the APOP digest (RFC 1939 §7) and the multi-line decoder that undoes byte-stuffing and turns
//! CRLF into LF as a message streams past, one line at a time.

use md5::{Digest, Md5};

/// A status line: `+OK text` or `-ERR text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and the rest of the line.
    Ok(String),
    /// `-ERR` and the rest of the line.
    Err(String),
}

/// Parses a status line (with or without its line ending). Anything else is `None`.
pub fn parse_status(line: &[u8]) -> Option<Reply> {
    let line = trim_eol(line);
    let text =
        |rest: &[u8]| String::from_utf8_lossy(rest.strip_prefix(b" ").unwrap_or(rest)).into_owned();
    let word_end = |rest: &[u8]| rest.first().is_none_or(|c| *c == b' ');
    if let Some(rest) = line.strip_prefix(b"+OK")
        && word_end(rest)
    {
        return Some(Reply::Ok(text(rest)));
    }
    if let Some(rest) = line.strip_prefix(b"-ERR")
        && word_end(rest)
    {
        return Some(Reply::Err(text(rest)));
    }
    None
}

/// How long a server keeps retrieved messages (CAPA EXPIRE, RFC 2449 §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expire {
    /// Messages are never deleted by the server.
    Never,
    /// Messages may be deleted this many days after retrieval (0: at the end of the session).
    Days(u32),
}

/// What CAPA said. A server without CAPA gets the RFC 1939 defaults (USER, nothing else).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// CAPA answered at all.
    pub known: bool,
    /// UIDL.
    pub uidl: bool,
    /// TOP.
    pub top: bool,
    /// PIPELINING: commands may be sent without waiting for each answer.
    pub pipelining: bool,
    /// STLS (RFC 2595).
    pub stls: bool,
    /// USER/PASS.
    pub user: bool,
    /// SASL mechanisms, upper case.
    pub sasl: Vec<String>,
    /// LOGIN-DELAY: minimum seconds between logins.
    pub login_delay: Option<u64>,
    /// EXPIRE.
    pub expire: Option<Expire>,
}

/// Parses the lines of a CAPA answer (the multi-line body, already decoded).
pub fn parse_capa(lines: &[String]) -> Capabilities {
    let mut caps = Capabilities {
        known: true,
        ..Default::default()
    };
    for line in lines {
        let mut words = line.split_ascii_whitespace();
        let Some(tag) = words.next() else { continue };
        match tag.to_ascii_uppercase().as_str() {
            "UIDL" => caps.uidl = true,
            "TOP" => caps.top = true,
            "PIPELINING" => caps.pipelining = true,
            "STLS" => caps.stls = true,
            "USER" => caps.user = true,
            "SASL" => caps.sasl = words.map(|w| w.to_ascii_uppercase()).collect(),
            // "LOGIN-DELAY 900" (or "LOGIN-DELAY 900 USER" after login): the first number.
            "LOGIN-DELAY" => caps.login_delay = words.next().and_then(|w| w.parse().ok()),
            "EXPIRE" => {
                caps.expire = match words.next() {
                    Some(w) if w.eq_ignore_ascii_case("NEVER") => Some(Expire::Never),
                    Some(w) => w.parse().ok().map(Expire::Days),
                    None => None,
                }
            }
            _ => {}
        }
    }
    caps
}

/// Why a listing line was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} line {line:?}")]
pub struct ListingError {
    /// UIDL or LIST.
    pub what: &'static str,
    /// The line, lossily decoded and cut to 100 characters.
    pub line: String,
}

fn listing_error(what: &'static str, line: &str) -> ListingError {
    ListingError {
        what,
        line: line.chars().take(100).collect(),
    }
}

/// One line of a UIDL listing: `msgno unique-id`. The id is 1 to 70 characters from 0x21 to
/// 0x7E (RFC 1939 §7); anything else is refused, since it would be stored and compared as is.
pub fn parse_uidl_line(line: &str) -> Result<(u32, String), ListingError> {
    let mut words = line.split(' ');
    let (Some(n), Some(id), None) = (words.next(), words.next(), words.next()) else {
        return Err(listing_error("UIDL", line));
    };
    let n: u32 = n.parse().map_err(|_| listing_error("UIDL", line))?;
    if n == 0 || id.is_empty() || id.len() > 70 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(listing_error("UIDL", line));
    }
    Ok((n, id.to_string()))
}

/// One line of a LIST listing: `msgno octets`.
pub fn parse_list_line(line: &str) -> Result<(u32, u64), ListingError> {
    let mut words = line.split_ascii_whitespace();
    let (Some(n), Some(size)) = (words.next(), words.next()) else {
        return Err(listing_error("LIST", line));
    };
    match (n.parse::<u32>(), size.parse::<u64>()) {
        (Ok(n), Ok(size)) if n > 0 => Ok((n, size)),
        _ => Err(listing_error("LIST", line)),
    }
}

/// The `<...>` timestamp of an APOP-capable greeting.
pub fn apop_timestamp(greeting: &str) -> Option<&str> {
    let start = greeting.find('<')?;
    let end = start.checked_add(greeting.get(start..)?.find('>')?)?;
    let stamp = greeting.get(start..=end)?;
    (stamp.contains('@') && stamp.len() > 2).then_some(stamp)
}

/// The APOP digest: lower-case hex MD5 of timestamp followed by the password.
pub fn apop_digest(timestamp: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(password.as_bytes());
    crate::model::hex(&h.finalize())
}

/// The SASL PLAIN initial response (RFC 4616), base64: `\0user\0password`.
pub fn sasl_plain(user: &str, password: &str) -> String {
    use base64::Engine;
    let mut raw = Vec::with_capacity(user.len().saturating_add(password.len()).saturating_add(2));
    raw.push(0);
    raw.extend_from_slice(user.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// What one line of a multi-line answer was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// Content: appended to the output, byte-stuffing undone, the line ending a single LF.
    Data,
    /// The terminating `.` line.
    End,
}

/// Decodes one raw line (as read up to and including `\n`) of a multi-line answer.
/// `CRLF` and a bare `LF` both end a line; a final line without `\n` (EOF) is returned as is.
pub fn decode_line(raw: &[u8], out: &mut Vec<u8>) -> Line {
    let body = trim_eol(raw);
    if body == b"." {
        return Line::End;
    }
    let body = body.strip_prefix(b".").unwrap_or(body);
    out.extend_from_slice(body);
    if raw.ends_with(b"\n") {
        out.push(b'\n');
    }
    Line::Data
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status(b"+OK ready\r\n"),
            Some(Reply::Ok("ready".into()))
        );
        assert_eq!(parse_status(b"+OK\r\n"), Some(Reply::Ok(String::new())));
        assert_eq!(
            parse_status(b"-ERR [IN-USE] locked\r\n"),
            Some(Reply::Err("[IN-USE] locked".into()))
        );
        assert_eq!(parse_status(b"+OKAY\r\n"), None);
        assert_eq!(parse_status(b"* OK imap\r\n"), None);
    }

    #[test]
    fn capa_lines() {
        let lines: Vec<String> = [
            "TOP",
            "UIDL",
            "RESP-CODES",
            "PIPELINING",
            "STLS",
            "USER",
            "SASL PLAIN login",
            "LOGIN-DELAY 900",
            "EXPIRE 30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = parse_capa(&lines);
        assert!(c.known && c.top && c.uidl && c.pipelining && c.stls && c.user);
        assert_eq!(c.sasl, vec!["PLAIN", "LOGIN"]);
        assert_eq!(c.login_delay, Some(900));
        assert_eq!(c.expire, Some(Expire::Days(30)));
        assert_eq!(
            parse_capa(&["EXPIRE NEVER".to_string()]).expire,
            Some(Expire::Never)
        );
    }

    #[test]
    fn uidl_lines() {
        assert_eq!(parse_uidl_line("3 000001a7"), Ok((3, "000001a7".into())));
        for bad in [
            "3",
            "x abc",
            "0 abc",
            "3 a b",
            "3 ",
            &format!("1 {}", "a".repeat(71)),
        ] {
            assert!(parse_uidl_line(bad).is_err(), "{bad}");
        }
        assert!(parse_uidl_line("1 ../x\u{7f}").is_err());
        assert_eq!(parse_list_line("2 1048"), Ok((2, 1048)));
        assert!(parse_list_line("2 lots").is_err());
    }

    #[test]
    fn apop_example_from_rfc_1939() {
        let greeting = "POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
        let ts = apop_timestamp(greeting).unwrap();
        assert_eq!(ts, "<1896.697170952@dbc.mtview.ca.us>");
        assert_eq!(
            apop_digest(ts, "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
        assert_eq!(apop_timestamp("ready"), None);
    }

    #[test]
    fn sasl_plain_encoding() {
        assert_eq!(
            sasl_plain("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn multiline_unstuffs_and_ends() {
        let mut out = Vec::new();
        assert_eq!(decode_line(b"Subject: x\r\n", &mut out), Line::Data);
        assert_eq!(decode_line(b"..hidden dot\r\n", &mut out), Line::Data);
        assert_eq!(decode_line(b"bare lf\n", &mut out), Line::Data);
        assert_eq!(decode_line(b".\r\n", &mut out), Line::End);
        assert_eq!(out, b"Subject: x\n.hidden dot\nbare lf\n");
    }

    proptest! {
        /// Stuffing any message the way a server must (RFC 1939 §3) and decoding it line by
        /// line gives back the message with LF line endings, and the end is found exactly.
        #[test]
        fn stuffing_round_trips(lines in proptest::collection::vec("[ -~]{0,40}", 0..30)) {
            let mut wire = Vec::new();
            for l in &lines {
                if l.starts_with('.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(l.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let mut out = Vec::new();
            let mut ended = false;
            for raw in wire.split_inclusive(|b| *b == b'\n') {
                prop_assert!(!ended, "data after the end line");
                if decode_line(raw, &mut out) == Line::End {
                    ended = true;
                }
            }
            prop_assert!(ended);
            let expected: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
            prop_assert_eq!(out, expected);
        }
    }
}
