use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// Which certificate authorities the client trusts for the homeserver's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// The operating system's roots (a homeserver with a public WebPKI certificate).
    SystemRoots,
    /// A PEM file of CA certificates (a private deployment, `parley-homeserver dev`).
    CaFile(PathBuf),
    /// PEM bytes of CA certificates.
    CaPem(Vec<u8>),
}

pub(crate) fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::SystemRoots => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(Error::Tls(format!("no system root certificates found: {:?}", found.errors)));
            }
            // Unparseable system certificates are skipped, as browsers do.
            roots.add_parsable_certificates(found.certs);
        }
        Trust::CaFile(path) => {
            let invalid = |reason: String| Error::InvalidCaFile { path: path.clone(), reason };
            let pem = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
            add_pem(&mut roots, &pem).map_err(invalid)?;
        }
        Trust::CaPem(pem) => add_pem(&mut roots, pem).map_err(Error::Tls)?,
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn add_pem(roots: &mut rustls::RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        roots.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("no CERTIFICATE block found".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_are_explained() {
        let missing = client_config(&Trust::CaFile("/nonexistent/ca.pem".into()));
        assert!(matches!(missing, Err(Error::InvalidCaFile { .. })));
        let empty = client_config(&Trust::CaPem(b"hello".to_vec()));
        assert!(matches!(empty, Err(Error::Tls(reason)) if reason.contains("no CERTIFICATE")));
    }
}
