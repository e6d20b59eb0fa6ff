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

/// Extracts a message. Never panics, whatever the bytes.
pub fn extract(raw: &[u8]) -> Extracted {
    let Some(msg) = MessageParser::default().parse(raw) else {
        // Not even a header: index the start of the bytes as text.
        let mut body = String::from_utf8_lossy(&raw[..raw.len().min(MAX_BODY)]).into_owned();
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
    let end = raw.len().min(start + MAX_BODY);
    String::from_utf8_lossy(&raw[start..end]).into_owned()
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

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = extract(&bytes);
        }
    }
}
