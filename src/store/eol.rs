//! Line-ending conversion between the wire (CRLF, RFC 5322) and Maildir files (LF, as every
//! Unix MUA and Dovecot write them). Only line endings change: every other byte is kept.

// The conversions jump from line end to line end with memchr and copy whole lines: a byte at a
// time, converting was half of the CPU a migration of 1.4 GB spent (perf).

/// Turns each CRLF into LF; a lone CR is kept as it is (tests compare with it).
#[cfg(test)]
pub fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    write_crlf_as_lf(data, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Writes `data` with each CRLF turned into LF, in pieces: the converted message never exists
/// whole in memory (a 50 MB attachment stays in the network buffer only).
pub fn write_crlf_as_lf(data: &[u8], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', data) {
        if let Some(cr) = lf.checked_sub(1)
            && data.get(cr) == Some(&b'\r')
        {
            out.write_all(data.get(start..cr).unwrap_or_default())?;
            start = lf; // the LF starts the next piece
        }
    }
    out.write_all(data.get(start..).unwrap_or_default())
}

/// How many LFs in `data` have no CR before them: what [`lf_to_crlf`] adds to the size (a
/// Maildir file's size on the wire, RFC822.SIZE, without converting it).
pub fn bare_lf_count(data: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', data)
        .filter(|&lf| lf.checked_sub(1).and_then(|cr| data.get(cr)) != Some(&b'\r'))
        .count()
}

/// Turns each bare LF into CRLF; an existing CRLF is kept as it is.
pub fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let extra = memchr::memchr_iter(b'\n', data).count();
    let mut out = Vec::with_capacity(data.len().saturating_add(extra));
    let mut start = 0;
    for lf in memchr::memchr_iter(b'\n', data) {
        if lf.checked_sub(1).and_then(|cr| data.get(cr)) != Some(&b'\r') {
            out.extend_from_slice(data.get(start..lf).unwrap_or_default());
            out.push(b'\r');
            start = lf;
        }
    }
    out.extend_from_slice(data.get(start..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definitions, a byte at a time.
    fn reference_crlf_to_lf(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                i += 1; // drop the CR, keep the LF
            }
            out.push(data[i]);
            i += 1;
        }
        out
    }

    fn reference_lf_to_crlf(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = 0u8;
        for &b in data {
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            prev = b;
        }
        out
    }

    proptest! {
        #[test]
        fn conversions_equal_their_byte_at_a_time_definitions(data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300)) {
            let mut out = Vec::new();
            write_crlf_as_lf(&data, &mut out).unwrap();
            prop_assert_eq!(&out, &reference_crlf_to_lf(&data));
            prop_assert_eq!(crlf_to_lf(&data), reference_crlf_to_lf(&data));
            prop_assert_eq!(lf_to_crlf(&data), reference_lf_to_crlf(&data));
            prop_assert_eq!(data.len() + bare_lf_count(&data), reference_lf_to_crlf(&data).len());
        }
    }

    #[test]
    fn converts_only_line_ends() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\n"), b"a\nb\rc\n");
        assert_eq!(lf_to_crlf(b"a\nb\r\nc\r"), b"a\r\nb\r\nc\r");
        assert_eq!(lf_to_crlf(b"\n\n"), b"\r\n\r\n");
        assert_eq!(crlf_to_lf(b"\r\n\r\r\n"), b"\n\r\n");
    }

    proptest! {
        #[test]
        fn lf_text_round_trips(s in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), Just(0xffu8)], 0..64)) {
            prop_assert_eq!(crlf_to_lf(&lf_to_crlf(&s)), s);
        }
    }
}
