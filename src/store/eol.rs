//! Line-ending conversion between the wire (CRLF, RFC 5322) and Maildir files (LF, as every
//! Unix MUA and Dovecot write them). Only line endings change: every other byte is kept.

/// Turns each CRLF into LF; a lone CR is kept as it is.
pub fn crlf_to_lf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// Writes `data` with each CRLF turned into LF, in pieces: the converted message never exists
/// whole in memory (a 50 MB attachment stays in the network buffer only).
pub fn write_crlf_as_lf(data: &[u8], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            out.write_all(&data[start..i])?;
            start = i + 1; // keep the LF
            i += 2;
        } else {
            i += 1;
        }
    }
    out.write_all(&data[start..])
}

/// Turns each bare LF into CRLF; an existing CRLF is kept as it is.
pub fn lf_to_crlf(data: &[u8]) -> Vec<u8> {
    let extra = data.iter().filter(|b| **b == b'\n').count();
    let mut out = Vec::with_capacity(data.len() + extra);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn streaming_conversion_equals_whole_conversion(data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..300)) {
            let mut out = Vec::new();
            write_crlf_as_lf(&data, &mut out).unwrap();
            prop_assert_eq!(out, crlf_to_lf(&data));
        }
    }

    #[test]
    fn converts_only_line_ends() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\n"), b"a\nb\rc\n");
        assert_eq!(lf_to_crlf(b"a\nb\r\nc\r"), b"a\r\nb\r\nc\r");
    }

    proptest! {
        #[test]
        fn lf_text_round_trips(s in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), Just(0xffu8)], 0..64)) {
            prop_assert_eq!(crlf_to_lf(&lf_to_crlf(&s)), s);
        }
    }
}
