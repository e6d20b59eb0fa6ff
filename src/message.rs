//! Just enough RFC 5322 to read the evidence the sync keeps about a message: its Message-ID.
//! Never fails on malformed input; a message is always stored as received.

/// The Message-ID of a raw message (CRLF or LF), normalised: without `<>` and surrounding space.
pub fn message_id(raw: &[u8]) -> Option<String> {
    let mut lines = raw.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the header
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        // Folded continuation lines start with white space.
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                let next = next.strip_suffix(b"\r").unwrap_or(next);
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        return normalise(&String::from_utf8_lossy(&value));
    }
    None
}

/// Strips white space and angle brackets from a Message-ID value.
pub fn normalise(value: &str) -> Option<String> {
    let v = value.trim();
    let v = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_message_ids() {
        assert_eq!(
            message_id(b"From: a\r\nMessage-ID: <x@y>\r\n\r\nbody").as_deref(),
            Some("x@y")
        );
        assert_eq!(
            message_id(b"message-id:\n <folded@y>\nSubject: s\n\n").as_deref(),
            Some("folded@y")
        );
        assert_eq!(message_id(b"Subject: s\n\nMessage-ID: <in-body@y>\n"), None);
        assert_eq!(message_id(b"\xff\xfe garbage"), None);
    }
}
