//! Folder names: the canonical form, the wire form (modified UTF-7, RFC 3501 §5.1.3) and the
//! `folders` patterns.
//!
//! A canonical name is UTF-8 with `/` between hierarchy levels and `INBOX` spelled in capitals,
//! whatever the server's delimiter. Every name a server sends is checked here before it can become
//! a path: empty, `.`/`..`, control characters and absurd lengths are refused, so nothing a server
//! sends can address a directory outside the Maildir root. No I/O.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fmt;

/// Longest accepted hierarchy component, in bytes (a file-name limit on every common filesystem).
pub const MAX_COMPONENT_BYTES: usize = 200;
/// Longest accepted whole name, in bytes.
pub const MAX_NAME_BYTES: usize = 1000;
/// Deepest accepted hierarchy.
pub const MAX_DEPTH: usize = 32;

/// Why a folder name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The modified UTF-7 on the wire is malformed.
    #[error("folder name {0:?} is not valid modified UTF-7")]
    BadUtf7(String),
    /// A component is empty, `.` or `..`.
    #[error("folder name {0:?} has an empty, \".\" or \"..\" component")]
    BadComponent(String),
    /// A control character (including NUL) appears.
    #[error("folder name {0:?} contains a control character")]
    ControlCharacter(String),
    /// Too long or too deep.
    #[error("folder name {0:?}... is too long or too deeply nested")]
    TooLong(String),
    /// A component contains `/`, which the canonical form reserves as the separator.
    #[error("folder name {0:?} has a component containing \"/\"")]
    SlashInComponent(String),
    /// A component contains the server's hierarchy delimiter, so it cannot be sent.
    #[error("folder name {name:?} has a component containing the server delimiter {delimiter:?}")]
    DelimiterInComponent {
        /// The canonical name.
        name: String,
        /// The server's delimiter.
        delimiter: char,
    },
}

/// A validated canonical folder name such as `INBOX`, `Archive` or `Lists/rust`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FolderName(String);

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FolderName {
    /// Validates components and builds the canonical name. `INBOX` (any case) alone becomes
    /// `INBOX`.
    pub fn from_components<S: AsRef<str>>(components: &[S]) -> Result<FolderName, NameError> {
        let joined: Vec<&str> = components.iter().map(|c| c.as_ref()).collect();
        let display = joined.join("/");
        let short: String = display.chars().take(80).collect();
        if components.is_empty() || components.len() > MAX_DEPTH || display.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong(short));
        }
        for c in &joined {
            if c.is_empty() || *c == "." || *c == ".." {
                return Err(NameError::BadComponent(display));
            }
            if c.chars().any(char::is_control) {
                return Err(NameError::ControlCharacter(
                    display.escape_debug().to_string(),
                ));
            }
            if c.len() > MAX_COMPONENT_BYTES {
                return Err(NameError::TooLong(short));
            }
            if c.contains('/') {
                return Err(NameError::SlashInComponent(display));
            }
        }
        if joined.len() == 1 && joined[0].eq_ignore_ascii_case("INBOX") {
            return Ok(FolderName("INBOX".to_string()));
        }
        Ok(FolderName(display))
    }

    /// Parses a canonical name as written in config or state (`Lists/rust`).
    pub fn parse(canonical: &str) -> Result<FolderName, NameError> {
        let parts: Vec<&str> = canonical.split('/').collect();
        FolderName::from_components(&parts)
    }

    /// Decodes a server's wire name given its hierarchy delimiter (`None` for a flat namespace).
    pub fn from_wire(wire: &str, delimiter: Option<char>) -> Result<FolderName, NameError> {
        let decoded = decode_mutf7(wire)?;
        let parts: Vec<&str> = match delimiter {
            Some(d) => decoded.split(d).collect(),
            None => vec![decoded.as_str()],
        };
        FolderName::from_components(&parts)
    }

    /// The name as the server wants it: components joined with its delimiter, modified UTF-7.
    pub fn to_wire(&self, delimiter: Option<char>) -> Result<String, NameError> {
        let parts = self.components();
        let joined = match delimiter {
            Some('/') | None if parts.len() == 1 => parts[0].to_string(),
            Some(d) => {
                for p in &parts {
                    if p.contains(d) {
                        return Err(NameError::DelimiterInComponent {
                            name: self.0.clone(),
                            delimiter: d,
                        });
                    }
                }
                parts.join(&d.to_string())
            }
            None => {
                return Err(NameError::DelimiterInComponent {
                    name: self.0.clone(),
                    delimiter: '/',
                });
            }
        };
        Ok(encode_mutf7(&joined))
    }

    /// The hierarchy components.
    pub fn components(&self) -> Vec<&str> {
        self.0.split('/').collect()
    }

    /// True for the INBOX.
    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How one server spells folder names: its hierarchy delimiter and the prefix of its personal
/// namespace (RFC 2342), such as Courier's `INBOX.`. Local names never show the prefix: a wire
/// name under it is decoded without it, and every name sent gets it (INBOX excepted, which is
/// `INBOX` everywhere). Names outside the personal namespace (shared folders) are decoded whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerNames {
    /// The personal namespace's prefix as the server sends it (modified UTF-7, delimiter
    /// included: `INBOX.`); empty for none.
    prefix: String,
    /// The hierarchy delimiter (`None` for a flat namespace).
    delimiter: Option<char>,
}

impl ServerNames {
    /// Names with a personal namespace prefix (as NAMESPACE gives it) and delimiter. A prefix
    /// that does not end with the delimiter gets it, as RFC 2342 §5 has every prefix end with
    /// one when the namespace has a hierarchy.
    pub fn new(prefix: &str, delimiter: Option<char>) -> ServerNames {
        let mut prefix = prefix.to_string();
        if let Some(d) = delimiter
            && !prefix.is_empty()
            && !prefix.ends_with(d)
        {
            prefix.push(d);
        }
        ServerNames { prefix, delimiter }
    }

    /// Names without a prefix: the delimiter alone.
    pub fn flat(delimiter: Option<char>) -> ServerNames {
        ServerNames {
            prefix: String::new(),
            delimiter,
        }
    }

    /// The hierarchy delimiter.
    pub fn delimiter(&self) -> Option<char> {
        self.delimiter
    }

    /// The personal namespace prefix as sent (`INBOX.`), empty for none.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The rest of `wire` after the personal prefix, when it is under it. `INBOX` as the first
    /// level is matched in any case (RFC 3501 §5.1).
    fn strip_prefix<'w>(&self, wire: &'w str) -> Option<&'w str> {
        if self.prefix.is_empty() {
            return None;
        }
        let n = self.prefix.len();
        let head = wire.get(..n)?;
        // INBOX as the first level matches in any case; every slice is checked, since both
        // names come from the server and need not be ASCII.
        let inbox_first = |t: &str| t.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("INBOX"));
        let same = if inbox_first(&self.prefix) {
            inbox_first(head) && head.get(5..) == self.prefix.get(5..)
        } else {
            head == self.prefix
        };
        let rest = wire.get(n..)?;
        (same && !rest.is_empty()).then_some(rest)
    }

    /// Decodes a wire name from LIST (`entry_delimiter` as that entry gives it; the server's own
    /// when it gives none): the personal prefix is dropped.
    pub fn decode(
        &self,
        wire: &str,
        entry_delimiter: Option<char>,
    ) -> Result<FolderName, NameError> {
        let delimiter = entry_delimiter.or(self.delimiter);
        match self.strip_prefix(wire) {
            Some(rest) => FolderName::from_wire(rest, delimiter),
            None => FolderName::from_wire(wire, delimiter),
        }
    }

    /// True when `wire` lies under the personal prefix (always true without a prefix).
    pub fn is_personal(&self, wire: &str) -> bool {
        self.prefix.is_empty()
            || wire.eq_ignore_ascii_case("INBOX")
            || self.strip_prefix(wire).is_some()
    }

    /// The name to send for a canonical name: the personal prefix, then the components joined by
    /// the delimiter, in modified UTF-7. INBOX stays `INBOX`.
    pub fn encode(&self, name: &FolderName) -> Result<String, NameError> {
        let wire = name.to_wire(self.delimiter)?;
        if name.is_inbox() || self.prefix.is_empty() {
            return Ok(wire);
        }
        Ok(format!("{}{wire}", self.prefix))
    }

    /// The canonical components of the prefix (`["INBOX"]` for `INBOX.`): where names lived in
    /// the state of a version that did not strip it.
    pub fn prefix_components(&self) -> Vec<String> {
        let trimmed = match self.delimiter {
            Some(d) => self.prefix.trim_end_matches(d),
            None => self.prefix.as_str(),
        };
        if trimmed.is_empty() {
            return Vec::new();
        }
        FolderName::from_wire(trimmed, self.delimiter)
            .map(|n| n.components().iter().map(|c| c.to_string()).collect())
            .unwrap_or_default()
    }
}

fn mutf7_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &base64::alphabet::IMAP_MUTF7,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    )
}

/// Encodes UTF-8 text as modified UTF-7.
pub fn encode_mutf7(text: &str) -> String {
    let engine = mutf7_engine();
    let mut out = String::with_capacity(text.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine.encode(bytes));
        out.push('-');
        pending.clear();
    };
    for ch in text.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes modified UTF-7; malformed input is an error, never a panic.
pub fn decode_mutf7(wire: &str) -> Result<String, NameError> {
    let bad = || NameError::BadUtf7(wire.chars().take(80).collect());
    let engine = mutf7_engine();
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let dash = after.find('-').ok_or_else(bad)?;
        let encoded = &after[..dash];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = engine.decode(encoded).map_err(|_| bad())?;
            if bytes.len() % 2 != 0 {
                return Err(bad());
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let s = String::from_utf16(&units).map_err(|_| bad())?;
            out.push_str(&s);
        }
        rest = &after[dash + 1..];
    }
    out.push_str(rest);
    if out.chars().any(|c| c == '\0') {
        return Err(NameError::ControlCharacter(out.escape_debug().to_string()));
    }
    Ok(out)
}

/// The `folders` selection: IMAP LIST-style patterns where `*` matches anything, `%` anything but
/// a hierarchy separator, and a leading `!` excludes. The last pattern that matches decides; a
/// name no pattern matches is not selected.
#[derive(Clone, Debug)]
pub struct FolderPatterns(Vec<(bool, String)>);

impl FolderPatterns {
    /// Builds the selection from config patterns.
    pub fn new(patterns: &[String]) -> FolderPatterns {
        FolderPatterns(
            patterns
                .iter()
                .map(|p| match p.strip_prefix('!') {
                    Some(rest) => (false, rest.to_string()),
                    None => (true, p.clone()),
                })
                .collect(),
        )
    }

    /// True when `name` is selected.
    pub fn selects(&self, name: &FolderName) -> bool {
        let mut selected = false;
        for (include, pattern) in &self.0 {
            let pattern = if pattern.eq_ignore_ascii_case("INBOX") {
                "INBOX"
            } else {
                pattern.as_str()
            };
            if wildcard_match(pattern.as_bytes(), name.as_str().as_bytes()) {
                selected = *include;
            }
        }
        selected
    }
}

fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((b'%', rest)) => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != b'/')
            .any(|i| wildcard_match(rest, &name[i..])),
        Some((c, rest)) => name.first() == Some(c) && wildcard_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mutf7_matches_the_rfc_examples() {
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode_mutf7("Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode_mutf7("A&B"), "A&-B");
        assert_eq!(decode_mutf7("A&-B").unwrap(), "A&B");
        assert_eq!(
            decode_mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
    }

    #[test]
    fn malformed_mutf7_is_an_error() {
        assert!(decode_mutf7("&AP").is_err());
        assert!(decode_mutf7("&AP!-").is_err());
        assert!(decode_mutf7("&AAA-").is_err()); // NUL
    }

    #[test]
    fn hostile_names_are_refused() {
        for wire in ["..", "a/../b", "a/./b", "/etc", "a//b", "x\u{1}y", ""] {
            assert!(FolderName::from_wire(wire, Some('/')).is_err(), "{wire:?}");
        }
        let long = "a".repeat(300);
        assert!(FolderName::from_wire(&long, Some('/')).is_err());
        let deep = vec!["a"; 40].join("/");
        assert!(FolderName::from_wire(&deep, Some('/')).is_err());
        assert!(FolderName::from_wire("a/b", Some('.')).is_err());
    }

    #[test]
    fn delimiters_are_translated() {
        let n = FolderName::from_wire("Lists.rust", Some('.')).unwrap();
        assert_eq!(n.as_str(), "Lists/rust");
        assert_eq!(n.to_wire(Some('.')).unwrap(), "Lists.rust");
        assert_eq!(
            FolderName::from_wire("inbox", Some('.')).unwrap().as_str(),
            "INBOX"
        );
        let dotted = FolderName::parse("v1.2").unwrap();
        assert!(dotted.to_wire(Some('.')).is_err());
        assert_eq!(dotted.to_wire(Some('/')).unwrap(), "v1.2");
    }

    #[test]
    fn a_personal_prefix_is_never_shown_and_always_sent() {
        let courier = ServerNames::new("INBOX.", Some('.'));
        let d = |w: &str| courier.decode(w, Some('.')).unwrap().to_string();
        assert_eq!(d("INBOX"), "INBOX");
        assert_eq!(d("INBOX.Lists.rust"), "Lists/rust");
        assert_eq!(d("inbox.Sent"), "Sent");
        assert_eq!(d("INBOX.INBOX.x"), "INBOX/x");
        assert_eq!(d("INBOX.Entw&APw-rfe"), "Entwürfe");
        // Non-ASCII bytes where the prefix is compared: no panic, just not under it.
        assert_eq!(d("INBOÜx"), "INBOÜx");
        let odd = ServerNames::new("Pröfix.", Some('.'));
        assert_eq!(odd.decode("Pröfix.a", Some('.')).unwrap().as_str(), "a");
        assert_eq!(odd.decode("Prö", Some('.')).unwrap().as_str(), "Prö");
        // Outside the personal namespace: whole.
        assert_eq!(d("#shared.team"), "#shared/team");
        assert!(!courier.is_personal("#shared.team"));
        assert!(courier.is_personal("INBOX.a") && courier.is_personal("inbox"));
        let e = |c: &str| courier.encode(&FolderName::parse(c).unwrap()).unwrap();
        assert_eq!(e("INBOX"), "INBOX");
        assert_eq!(e("Lists/rust"), "INBOX.Lists.rust");
        assert_eq!(e("INBOX/x"), "INBOX.INBOX.x");
        assert_eq!(e("Entwürfe"), "INBOX.Entw&APw-rfe");
        assert_eq!(courier.prefix_components(), vec!["INBOX".to_string()]);
        // A prefix given without its delimiter gets it.
        assert_eq!(ServerNames::new("INBOX", Some('.')).prefix(), "INBOX.");
        let plain = ServerNames::flat(Some('/'));
        assert_eq!(
            plain.decode("Lists/rust", None).unwrap().as_str(),
            "Lists/rust"
        );
        assert_eq!(
            plain.encode(&FolderName::parse("a/b").unwrap()).unwrap(),
            "a/b"
        );
        assert!(plain.prefix_components().is_empty());
    }

    proptest! {
        #[test]
        fn prefixed_names_round_trip(parts in proptest::collection::vec("[A-Za-z0-9 äöü_-]{1,12}", 1..4), prefix in prop_oneof![Just(""), Just("INBOX."), Just("Mail.")]) {
            let names = ServerNames::new(prefix, Some('.'));
            let name = FolderName::from_components(&parts).unwrap();
            let wire = names.encode(&name).unwrap();
            prop_assert_eq!(names.decode(&wire, Some('.')).unwrap(), name);
        }
    }

    #[test]
    fn patterns_last_match_wins() {
        let p = FolderPatterns::new(&["*".into(), "!Trash".into(), "!Lists/*".into()]);
        let sel = |s: &str| p.selects(&FolderName::parse(s).unwrap());
        assert!(sel("INBOX"));
        assert!(!sel("Trash"));
        assert!(sel("Trash2"));
        assert!(!sel("Lists/rust"));
        let p = FolderPatterns::new(&["inbox".into(), "Lists/%".into()]);
        let sel = |s: &str| p.selects(&FolderName::parse(s).unwrap());
        assert!(sel("INBOX"));
        assert!(sel("Lists/rust"));
        assert!(!sel("Lists/rust/old"));
        assert!(!sel("Archive"));
    }

    proptest! {
        #[test]
        fn mutf7_round_trips(s in "\\PC{0,40}") {
            prop_assert_eq!(decode_mutf7(&encode_mutf7(&s)).unwrap(), s);
        }

        #[test]
        fn decoding_never_panics(s in "[&A-Za-z0-9+,\\-]{0,30}") {
            let _ = decode_mutf7(&s);
        }

        #[test]
        fn accepted_names_never_escape(s in "[a-z./&\\-]{0,30}") {
            if let Ok(n) = FolderName::from_wire(&s, Some('/')) {
                for c in n.components() {
                    prop_assert!(c != ".." && c != "." && !c.is_empty());
                }
            }
        }
    }
}
