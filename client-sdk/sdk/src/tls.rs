//! The TLS configuration of the client: rustls with the ring provider, and the trust
//! roots the caller chose.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// Which certificate authorities the client trusts for the homeserver's certificate.
#[derive(Clone)]
pub enum Trust {
    /// The operating system's roots (a homeserver with a public WebPKI certificate).
    SystemRoots,
    /// A PEM file of CA certificates (a private deployment, `parley-homeserver dev`).
    CaFile(PathBuf),
    /// PEM bytes of CA certificates.
    CaPem(Vec<u8>),
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SystemRoots => f.write_str("SystemRoots"),
            Self::CaFile(path) => f.debug_tuple("CaFile").field(path).finish(),
            Self::CaPem(pem) => write!(f, "CaPem(<{} bytes>)", pem.len()),
        }
    }
}

/// The rustls configuration for `trust`: ring provider, safe default protocol versions
/// (TLS 1.3 and 1.2), ALPN offering HTTP/2 then HTTP/1.1, no client certificate.
pub(crate) fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::SystemRoots => {
            let found = rustls_native_certs::load_native_certs();
            // Unparseable system certificates are skipped, as browsers do.
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(Error::Tls(format!(
                    "no usable system root certificates found{why}; use a CA file instead"
                )));
            }
        }
        Trust::CaFile(path) => {
            let invalid = |reason: String| Error::InvalidCaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
            add_pem(&mut roots, &pem).map_err(invalid)?;
        }
        Trust::CaPem(pem) => add_pem(&mut roots, pem).map_err(|e| Error::Tls(format!("CA certificates: {e}")))?,
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Adds every CERTIFICATE block of `pem`; other blocks (keys, ...) are ignored.
fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not valid PEM: {e}"))?;
        roots.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("no CERTIFICATE block found (expected a PEM file)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = include_bytes!("../testdata/ca.pem");

    #[test]
    fn ca_pem_and_file_are_loaded() -> Result<(), Box<dyn std::error::Error>> {
        let config = client_config(&Trust::CaPem(CA.to_vec()))?;
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, CA)?;
        client_config(&Trust::CaFile(path))?;
        Ok(())
    }

    #[test]
    fn bad_ca_files_are_explained() -> Result<(), Box<dyn std::error::Error>> {
        let missing = client_config(&Trust::CaFile("/nonexistent/ca.pem".into()));
        assert!(
            matches!(&missing, Err(Error::InvalidCaFile { path, .. }) if path.ends_with("ca.pem")),
            "{missing:?}"
        );
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")?;
        let not_a_cert = client_config(&Trust::CaFile(path));
        assert!(
            matches!(&not_a_cert, Err(Error::InvalidCaFile { reason, .. }) if reason.contains("no CERTIFICATE")),
            "{not_a_cert:?}"
        );
        let garbage = client_config(&Trust::CaPem(b"hello".to_vec()));
        assert!(matches!(garbage, Err(Error::Tls(reason)) if reason.contains("no CERTIFICATE")));
        Ok(())
    }

    #[test]
    fn debug_does_not_dump_pem() {
        let shown = format!("{:?}", Trust::CaPem(CA.to_vec()));
        assert!(shown.starts_with("CaPem(<") && !shown.contains("BEGIN"), "{shown}");
    }
}
