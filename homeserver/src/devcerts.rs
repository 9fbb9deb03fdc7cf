//! A private certificate authority for development and tests: it issues server
//! certificates that clients trust through the CA file, never through the system roots.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use parley_private_file as private_file;

pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn generate(common_name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for the given DNS names and IP addresses, usable by a TLS server
    /// and (for federation) as a TLS client.
    pub fn issue(&self, names: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

pub struct DevTlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reuses the CA and localhost certificate under `dir`, or creates them.
pub fn ensure_dev_tls(dir: &Path) -> anyhow::Result<DevTlsFiles> {
    let files = DevTlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    if files.ca.exists() && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(dir)?;
    let ca = DevCa::generate("Parley development CA")?;
    let issued = ca.issue(&["localhost", "127.0.0.1", "::1"])?;
    std::fs::write(&files.ca, ca.cert_pem())?;
    std::fs::write(&files.cert, issued.cert_pem)?;
    private_file::write(&files.key, issued.key_pem.as_bytes())?;
    Ok(files)
}
