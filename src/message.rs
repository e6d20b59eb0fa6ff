//! Just enough RFC 5322 to read the evidence the sync keeps about a message: its Message-ID, and
//! the header lines other sync tools add to their copies. Never fails on malformed input; a
//! message is always stored as received.

/// The Message-ID of a raw message (CRLF or LF), normalised: without `<>` and surrounding space.
pub fn message_id(raw: &[u8]) -> Option<String> {
    normalise(&header(raw, "message-id")?)
}

/// The first header field `name` (case-insensitive) of a raw message (CRLF or LF), unfolded,
/// as lossy UTF-8 with surrounding space trimmed. Only the header block is read.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let mut lines = raw.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the header
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (field, rest) = line.split_at(colon);
        if !field.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        let mut value = rest.get(1..).unwrap_or_default().to_vec();
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
        return Some(String::from_utf8_lossy(&value).trim().to_string());
    }
    None
}

/// Header fields that sync tools add to the copies they store, so a copy differs from the server's
/// message by exactly these lines: mbsync's `X-TUID` (isync's drv_imap/sync.c add it to messages
/// it propagates) and offlineimap's `X-OfflineIMAP`.
pub const SYNC_MARKERS: &[&str] = &["x-tuid", "x-offlineimap"];

/// How many bytes of `raw`'s header section are sync-marker lines ([`SYNC_MARKERS`], with their
/// folded continuations and line ends), counted as they would be on the wire: each bare LF as
/// CRLF. A copy's wire size less this is the size of the message as the other side has it.
pub fn sync_marker_wire_bytes(raw: &[u8]) -> usize {
    let mut total = 0usize;
    let mut in_marker = false;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            break; // end of the header
        }
        let folded = content.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !folded {
            in_marker = content
                .iter()
                .position(|b| *b == b':')
                .and_then(|colon| content.get(..colon))
                .is_some_and(|name| {
                    SYNC_MARKERS
                        .iter()
                        .any(|m| name.trim_ascii().eq_ignore_ascii_case(m.as_bytes()))
                });
        }
        if in_marker {
            let bare_lf = line.ends_with(b"\n") && !line.ends_with(b"\r\n");
            total = total
                .saturating_add(line.len())
                .saturating_add(usize::from(bare_lf));
        }
    }
    total
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

    #[test]
    fn sync_markers_are_measured_as_on_the_wire() {
        // mbsync's copy: one X-TUID line (LF in the Maildir, CRLF on the wire: 20 + 1 bytes).
        let copy = b"From: a\nX-TUID: 1Ab2Cd3Ef4Gh\nSubject: s\n\nX-TUID: in the body\n";
        assert_eq!(
            sync_marker_wire_bytes(copy),
            "X-TUID: 1Ab2Cd3Ef4Gh\r\n".len()
        );
        // offlineimap's, folded over two lines, CRLF already.
        let copy = b"X-OfflineIMAP: 123-456\r\n\tmore\r\nSubject: s\r\n\r\n";
        assert_eq!(
            sync_marker_wire_bytes(copy),
            "X-OfflineIMAP: 123-456\r\n\tmore\r\n".len()
        );
        // None, and a header that never ends.
        assert_eq!(sync_marker_wire_bytes(b"Subject: s\n\nbody"), 0);
        assert_eq!(sync_marker_wire_bytes(b"x-tuid: abc"), "x-tuid: abc".len());
    }
}
