//! TLS client configuration shared by the IMAP and POP3 stores: rustls with the ring provider,
//! system roots (falling back to the webpki set) plus an optional `ca_file`. Verification is
//! always on.

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// Builds the client configuration, trusting the system roots and `ca_file`. Errors are text
/// naming the file; the caller adds the host.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let tls_err = |message: String| message;
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let mut added: usize = 0;
        let iter = CertificateDer::pem_file_iter(path)
            .map_err(|e| tls_err(format!("cannot read ca_file {}: {e}", path.display())))?;
        for cert in iter {
            let cert =
                cert.map_err(|e| tls_err(format!("bad certificate in {}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| tls_err(format!("unusable certificate in {}: {e}", path.display())))?;
            added = added.saturating_add(1);
        }
        if added == 0 {
            return Err(tls_err(format!(
                "no certificate found in ca_file {}",
                path.display()
            )));
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
