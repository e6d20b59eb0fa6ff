//! TLS client configuration shared by the IMAP, POP3 and SMTP stores: rustls with the ring
//! provider, system roots (falling back to the webpki set) plus an optional `ca_file`, and
//! certificate pins. Verification is always on; what it accepts beyond the usual chain to a
//! trusted root is exactly:
//! - a server certificate that is itself one of the `ca_file` certificates (a self-signed
//!   certificate made by `openssl req -x509`, which marks it CA:TRUE, so webpki refuses it as
//!   an end entity with `CaUsedAsEndEntity`; mbsync's `CertificateFile` accepts it the same way);
//! - with `tls_pin`, a certificate matching a pin (SHA-256 of the certificate, or of its
//!   SubjectPublicKeyInfo), whatever signed it and whatever its dates; and then nothing else.
//!
//! In every case the handshake signature is verified with the certificate's key, so only the
//! holder of that key gets through. The certificate the server showed is remembered, so errors
//! and `arctern check` can print its digests for the user to pin or trust.

use crate::config::TlsPin;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::Digest;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The digests of a certificate a server showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// SHA-256 of the certificate (DER).
    pub sha256: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo (DER), when the certificate could be read that far.
    pub spki_sha256: Option<[u8; 32]>,
}

impl PeerCertificate {
    /// Digests of a DER certificate.
    pub fn of(der: &[u8]) -> PeerCertificate {
        PeerCertificate {
            sha256: sha2::Sha256::digest(der).into(),
            spki_sha256: subject_public_key_info(der).map(|spki| sha2::Sha256::digest(spki).into()),
        }
    }

    /// `sha256:AB:CD:…` as `openssl x509 -noout -fingerprint -sha256` prints it.
    pub fn sha256_pin(&self) -> String {
        let hex: Vec<String> = self.sha256.iter().map(|b| format!("{b:02X}")).collect();
        format!("sha256:{}", hex.join(":"))
    }

    /// `spki-sha256:BASE64` as curl's `--pinnedpubkey` takes it.
    pub fn spki_pin(&self) -> Option<String> {
        use base64::Engine;
        self.spki_sha256.map(|d| {
            format!(
                "spki-sha256:{}",
                base64::engine::general_purpose::STANDARD.encode(d)
            )
        })
    }

    /// Both pins, for messages.
    pub fn pins(&self) -> String {
        match self.spki_pin() {
            Some(spki) => format!("{} and {spki}", self.sha256_pin()),
            None => self.sha256_pin(),
        }
    }

    fn matches(&self, pin: &TlsPin) -> bool {
        match pin {
            TlsPin::Certificate(d) => *d == self.sha256,
            TlsPin::PublicKey(d) => Some(*d) == self.spki_sha256,
        }
    }
}

/// One DER element.
struct Der<'a> {
    tag: u8,
    /// The element with its tag and length.
    whole: &'a [u8],
    contents: &'a [u8],
}

/// The first DER element of `input`, and what follows it.
fn der_element(input: &[u8]) -> Option<(Der<'_>, &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2usize.checked_add(n)?)? {
            len = len.checked_mul(256)?.checked_add(usize::from(*b))?;
        }
        (len, 2usize.checked_add(n)?)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    let contents = input.get(header..end)?;
    Some((
        Der {
            tag,
            whole,
            contents,
        },
        input.get(end..)?,
    ))
}

/// The DER SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1: the seventh field of
/// `tbsCertificate` when the `[0]` version is present, the sixth otherwise). A walk over the
/// DER rather than an X.509 crate: this is the only field arctern reads, and it needs no more
/// than these few checked lines.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let (certificate, _) = der_element(cert)?;
    let (tbs, _) = der_element(certificate.contents)?;
    if certificate.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs.contents;
    let (first, after) = der_element(rest)?;
    if first.tag == 0xa0 {
        rest = after; // version
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_element(rest)?.1;
    }
    let (spki, _) = der_element(rest)?;
    (spki.tag == SEQUENCE).then_some(spki.whole)
}

/// The certificate the last handshake saw (shared with the verifier).
pub type SeenCertificate = Arc<Mutex<Option<PeerCertificate>>>;

/// Reads what a verifier recorded.
pub fn seen(seen: &SeenCertificate) -> Option<PeerCertificate> {
    seen.lock()
        .map(|g| g.clone())
        .unwrap_or_else(|p| p.into_inner().clone())
}

#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The `ca_file` certificates, accepted as themselves.
    exact: Vec<CertificateDer<'static>>,
    pins: Vec<TlsPin>,
    seen: SeenCertificate,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let peer = PeerCertificate::of(end_entity);
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(peer.clone());
        }
        if !self.pins.is_empty() {
            return if self.pins.iter().any(|p| peer.matches(p)) {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "the server's certificate matches no tls_pin (it has {})",
                    peer.pins()
                )))
            };
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(_) if self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Builds the client configuration, trusting the system roots, `ca_file` and `pins`, and the
/// slot where the server's certificate is recorded. Errors are text naming the file; the caller
/// adds the host.
pub fn client_config(
    ca_file: Option<&Path>,
    pins: &[TlsPin],
) -> Result<(Arc<ClientConfig>, SeenCertificate), String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut exact = Vec::new();
    if let Some(path) = ca_file {
        let iter = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        for cert in iter {
            let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            roots
                .add(cert.clone())
                .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
            exact.push(cert);
        }
        if exact.is_empty() {
            return Err(format!(
                "no certificate found in ca_file {}",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let seen: SeenCertificate = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        webpki,
        exact,
        pins: pins.to_vec(),
        seen: seen.clone(),
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

/// A failed handshake said so that the user knows what to do: a plain-text answer names the
/// settings that fit; a certificate that is not trusted names its digests and the two ways to
/// trust it. `tls_port` is the protocol's implicit-TLS port (993, 995, 465).
pub fn explain(error: &std::io::Error, seen: &SeenCertificate, tls_port: u16) -> String {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let text = error.to_string();
    let plain = matches!(
        rustls_error,
        Some(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
        ))
    ) || text.contains("InvalidContentType");
    if plain {
        return format!(
            "the server answered in plain text, not TLS: this port does not speak TLS from the start; use tls = \"starttls\" on this port, or the TLS port ({tls_port})"
        );
    }
    let certificate = matches!(rustls_error, Some(rustls::Error::InvalidCertificate(_)))
        || text.contains("invalid peer certificate");
    match (certificate, self::seen(seen)) {
        (true, Some(peer)) => format!(
            "{text}. The server's certificate has {}: if it is your server's own, set ca_file to it, or pin it with tls_pin = [\"{}\"]",
            peer.pins(),
            peer.sha256_pin()
        ),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_walk_survives_truncation_and_garbage() {
        assert_eq!(subject_public_key_info(b""), None);
        assert_eq!(subject_public_key_info(&[0x30, 0x82, 0xff]), None);
        assert_eq!(
            subject_public_key_info(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(subject_public_key_info(&[0x30, 0x02, 0x30, 0x00]), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let _ = subject_public_key_info(&junk);
        }
    }

    #[test]
    fn pin_texts_are_openssls_and_curls() {
        let peer = PeerCertificate {
            sha256: [0xab; 32],
            spki_sha256: Some([0x01; 32]),
        };
        assert!(peer.sha256_pin().starts_with("sha256:AB:AB:"));
        assert_eq!(
            TlsPin::parse(&peer.sha256_pin()),
            Ok(TlsPin::Certificate([0xab; 32]))
        );
        let bare = peer.sha256_pin()["sha256:".len()..]
            .replace(':', "")
            .to_lowercase();
        assert!(TlsPin::parse(&format!("sha256:{bare}")).is_ok());
        assert_eq!(
            TlsPin::parse(&peer.spki_pin().unwrap()),
            Ok(TlsPin::PublicKey([0x01; 32]))
        );
        assert!(peer.matches(&TlsPin::PublicKey([0x01; 32])));
        assert!(!peer.matches(&TlsPin::Certificate([0; 32])));
        assert!(TlsPin::parse("md5:00").is_err());
        assert!(TlsPin::parse("sha256:zz").is_err());
        assert!(TlsPin::parse("spki-sha256:AAAA").is_err());
    }
}
