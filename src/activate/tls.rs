//! The TLS side of `https://` health checks (rustls): which certificate
//! authorities a server's certificate must chain to. With a check's `ca`
//! file, exactly the authorities in it (a site's internal CA); without one,
//! the well-known roots (webpki-roots) and the host's own bundle, when it has
//! one.
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Where Debian keeps the host's bundle of trusted authorities.
const HOST_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration that trusts `ca`'s authorities, or the default
/// ones; the error says what is wrong with the file.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(file) => {
            let added = add_pem_file(&mut roots, file)?;
            if added == 0 {
                return Err(format!("{} holds no certificate", file.display()));
            }
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            // Best effort: a host without a bundle still has the well-known roots.
            let _ = add_pem_file(&mut roots, Path::new(HOST_BUNDLE));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Adds every certificate of a PEM file; how many were added.
fn add_pem_file(roots: &mut RootCertStore, file: &Path) -> Result<usize, String> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut added = 0;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{} is not PEM: {e}", file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        added += 1;
    }
    Ok(added)
}
