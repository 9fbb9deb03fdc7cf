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

/// The development CA and one certificate per server of `dev --domains N`.
pub struct DevFederationTls {
    pub ca: PathBuf,
    /// In the order of the names given (`ca` is the same file in each).
    pub servers: Vec<DevTlsFiles>,
}

/// Reuses the CA and the certificates under `dir` (`ca.pem`, `<label>/tls.pem` and
/// `tls.key` for `domain<i>`), or creates them all. Each server's certificate names its
/// server name, `localhost`, `127.0.0.1` and `::1` (DNS and IP subjectAltNames), for
/// both TLS server and client use (federation is mutual TLS).
pub fn ensure_dev_federation_tls(dir: &Path, server_names: &[&str]) -> anyhow::Result<DevFederationTls> {
    let ca_file = dir.join("ca.pem");
    let servers: Vec<DevTlsFiles> = (1..=server_names.len())
        .map(|i| {
            let server_dir = dir.join(format!("domain{i}"));
            DevTlsFiles {
                ca: ca_file.clone(),
                cert: server_dir.join("tls.pem"),
                key: server_dir.join("tls.key"),
            }
        })
        .collect();
    let names_file = dir.join("certificate-names");
    let wanted = server_names.join("\n");
    let complete = ca_file.exists()
        && servers.iter().all(|s| s.cert.exists() && s.key.exists())
        && std::fs::read_to_string(&names_file).is_ok_and(|n| n == wanted);
    if !complete {
        std::fs::create_dir_all(dir)?;
        let ca = DevCa::generate("Parley development federation CA")?;
        for (files, name) in servers.iter().zip(server_names) {
            if let Some(parent) = files.cert.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let issued = ca.issue(&[name, "localhost", "127.0.0.1", "::1"])?;
            std::fs::write(&files.cert, issued.cert_pem)?;
            private_file::write(&files.key, issued.key_pem.as_bytes())?;
        }
        std::fs::write(&ca_file, ca.cert_pem())?;
        std::fs::write(&names_file, wanted)?;
    }
    Ok(DevFederationTls { ca: ca_file, servers })
}
