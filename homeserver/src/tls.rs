//! TLS for the client API: rustls with the ring provider, TLS 1.3 preferred and 1.2
//! accepted, HTTP/2 and HTTP/1.1 offered through ALPN (actix adds them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate chain {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read TLS private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
    #[error("federation trust roots: {0}")]
    Roots(String),
}

/// Installs ring as the process-wide rustls provider, once. Safe to call repeatedly.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client API's TLS: any client may connect; devices authenticate with tokens.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, key_der) = certified_key(cert, key)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Mismatch)
}

/// The federation API's TLS: 1.3 only, and the peer must present a certificate that
/// chains to `trust_roots` (a PEM bundle) or, without one, to the system's roots. Which
/// server the certificate names is checked per request, against the claimed origin.
pub fn federation_server_config(
    cert: &Path,
    key: &Path,
    trust_roots: Option<&Path>,
) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, key_der) = certified_key(cert, key)?;
    let roots = Arc::new(root_store(trust_roots)?);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::Roots(e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Mismatch)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Mismatch)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates peers must chain to.
pub fn root_store(trust_roots: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match trust_roots {
        Some(path) => {
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| TlsError::Roots(format!("{}: {e}", path.display())))?
            {
                let cert = cert.map_err(|e| TlsError::Roots(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError::Roots(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::Roots(
                    "no system CA certificates found; install ca-certificates or set federation.trust_roots".into(),
                ));
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Roots("the trust roots hold no certificate".into()));
    }
    Ok(roots)
}

/// This server's certificate chain and private key, from their PEM files.
pub fn certified_key(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_owned(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((chain, key_der))
}
