//! Homeservers started in-process on 127.0.0.1 with a free port, each on its own database.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use parley_homeserver::Application;
use parley_homeserver::config::{
    Config, DatabaseConfig, LimitsConfig, ListenConfig, LogConfig, RegistrationConfig, TlsConfig,
};
use parley_homeserver::devcerts::DevCa;
use parley_sdk::{Client, Trust};
use parley_specs::ServerName;
use rustls::pki_types::pem::PemObject;

use crate::postgres::fresh_database;

/// A CA and a localhost certificate, shared by every server of this test process.
struct TestPki {
    _dir: tempfile::TempDir,
    ca_pem: String,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = DevCa::generate("Parley test CA").expect("CA");
        let issued = ca.issue(&["localhost", "127.0.0.1"]).expect("certificate");
        let ca_file = dir.path().join("ca.pem");
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        std::fs::write(&ca_file, ca.cert_pem()).expect("write");
        std::fs::write(&cert, issued.cert_pem).expect("write");
        std::fs::write(&key, issued.key_pem).expect("write");
        TestPki {
            ca_pem: ca.cert_pem(),
            ca_file,
            cert,
            key,
            _dir: dir,
        }
    })
}

pub struct TestServer {
    pub config: Config,
    pub addr: SocketAddr,
    /// `https://localhost:<port>`
    pub url: String,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// A homeserver with default settings on a fresh database.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, after letting the test adjust the configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = default_config(fresh_database().await);
        adjust(&mut config);
        Self::start(config).await
    }

    /// Starts a homeserver with exactly this configuration (e.g. on an existing database).
    pub async fn start(config: Config) -> Self {
        // Server faults are logged at error level; RUST_LOG shows more.
        parley_homeserver::telemetry::init(&LogConfig {
            level: "error".into(),
            ..LogConfig::default()
        });
        let app = Application::build(config.clone()).await.expect("homeserver starts");
        let addr = app.addr();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        let mut config = config;
        // A restart must come back on the same port for clients holding the URL.
        config.listen.client = addr;
        Self {
            url: format!("https://localhost:{}", addr.port()),
            config,
            addr,
            handle,
            task,
        }
    }

    /// Stops the server gracefully and returns its configuration, for a restart.
    pub async fn stop(self) -> Config {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.config
    }

    pub fn server_name(&self) -> &ServerName {
        &self.config.server_name
    }

    /// An SDK client trusting the test CA, not logged in.
    pub fn sdk(&self) -> Client {
        Client::new(
            self.url.parse().expect("url"),
            Trust::CaPem(pki().ca_pem.clone().into_bytes()),
        )
        .expect("client")
    }

    /// A plain HTTPS client trusting the test CA, for requests the SDK would never send.
    pub fn http(&self) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki().ca_pem.as_bytes()) {
            roots.add(cert.expect("CA pem")).expect("CA");
        }
        let tls =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .expect("reqwest")
    }

    pub fn endpoint_url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn ca_file(&self) -> PathBuf {
        pki().ca_file.clone()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = self.endpoint_url(parley_specs::endpoints::ops::METRICS.path);
        let response = self.http().get(url).send().await.expect("GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// Runs a `SELECT count(*) …` on this server's database.
    pub async fn count(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
        self.db().await.query_one(sql, params).await.expect(sql).get(0)
    }

    /// A direct connection to this server's database, to check what was stored.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.config.database.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

fn default_config(database_url: String) -> Config {
    let pki = pki();
    Config {
        server_name: ServerName::parse("test.parley").expect("server name"),
        listen: ListenConfig {
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            workers: 2,
        },
        tls: TlsConfig {
            cert: pki.cert.clone(),
            key: pki.key.clone(),
        },
        database: DatabaseConfig {
            url: database_url,
            pool_size: 8,
            pool_timeout_ms: 10_000,
        },
        registration: RegistrationConfig::default(),
        limits: LimitsConfig::default(),
        log: LogConfig::default(),
    }
}

/// Polls `condition` until it holds or `deadline` passes; returns whether it held.
pub async fn wait_until<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
