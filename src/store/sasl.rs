//! The SASL initial responses for bearer tokens, byte for byte: XOAUTH2 (Google's and
//! Microsoft's documented format) and OAUTHBEARER (RFC 7628 §3.1, with its GS2 header). The
//! protocols base64 them; these are the raw forms. Pure.

/// `user=USER^Aauth=Bearer TOKEN^A^A`.
pub fn xoauth2(user: &str, token: &str) -> Vec<u8> {
    format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// `n,a=USER,^Ahost=HOST^Aport=PORT^Aauth=Bearer TOKEN^A^A`; `,` and `=` in the user name are
/// escaped as RFC 5801 §4 says (`=2C`, `=3D`).
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> Vec<u8> {
    let user = user.replace('=', "=3D").replace(',', "=2C");
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

/// What a client answers to the error challenge a server sends after refusing a token: an
/// empty response for XOAUTH2, a lone `^A` for OAUTHBEARER (RFC 7628 §3.2.3). The server then
/// completes the exchange with its refusal.
pub fn after_error(mechanism: &str) -> Vec<u8> {
    if mechanism.eq_ignore_ascii_case("OAUTHBEARER") {
        vec![0x01]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_as_the_documents_give_them() {
        assert_eq!(
            xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
            b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
        );
        // RFC 7628 §4.1.
        assert_eq!(
            oauthbearer("user@example.com", "server.example.com", 143, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
            b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert!(oauthbearer("a,b=c", "h", 1, "t").starts_with(b"n,a=a=2Cb=3Dc,"));
        assert_eq!(after_error("OAUTHBEARER"), vec![1]);
        assert!(after_error("XOAUTH2").is_empty());
    }
}
