//! Homeservers started in-process on 127.0.0.1 with a free port, each on its own database.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use parley_homeserver::Application;
use parley_homeserver::config::{
    Config, DatabaseConfig, FederationConfig, FilesConfig, LimitsConfig, ListenConfig, LogConfig, MetricsConfig,
    RegistrationConfig, TlsConfig, TransparencyConfig,
};
use parley_homeserver::devcerts::DevCa;
use parley_sdk::{Client, Trust};
use parley_specs::ServerName;
use rustls::pki_types::pem::PemObject;

use crate::postgres::fresh_database;

/// A CA and a localhost certificate, shared by every server of this test process.
struct TestPki {
    _dir: tempfile::TempDir,
    ca: DevCa,
    ca_pem: String,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    /// `[metrics] token_file` of every test server, and the token in it.
    metrics_token_file: PathBuf,
    metrics_token: String,
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
        let metrics_token_file = dir.path().join("metrics.token");
        parley_homeserver::token_file::create_if_missing(&metrics_token_file).expect("metrics token");
        let metrics_token = parley_homeserver::token_file::load(&metrics_token_file).expect("metrics token");
        TestPki {
            metrics_token_file,
            metrics_token,
            ca_pem: ca.cert_pem(),
            ca,
            ca_file,
            cert,
            key,
            _dir: dir,
        }
    })
}

/// A loopback address with a port free right now, for a server whose address others
/// must know before it starts. The port is released before the server binds it, so it
/// comes from below Linux's ephemeral range (32768 and up): no outgoing connection or
/// port-0 bind can take it meanwhile, and this process never hands it out twice.
pub fn free_loopback_addr() -> SocketAddr {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        let port = rand::random_range(20_000..32_000);
        if handed_out.contains(&port) {
            continue;
        }
        if let Ok(listener) = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            drop(listener);
            handed_out.insert(port);
            return SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        }
    }
    panic!("no free loopback port between 20000 and 32000")
}

/// The PEM file of the CA behind every test server's certificate.
pub fn ca_file() -> PathBuf {
    pki().ca_file.clone()
}

/// A certificate for these names from the CA every test server trusts (also for
/// federation client certificates).
pub fn issue_cert(names: &[&str]) -> parley_homeserver::devcerts::IssuedCert {
    pki().ca.issue(names).expect("certificate")
}

/// An HTTPS client trusting the test CA that presents `identity` (a PEM certificate chain
/// and key) when a server asks for a client certificate.
pub fn https_client(identity: Option<&parley_homeserver::devcerts::IssuedCert>) -> reqwest::Client {
    https_client_trusting(&pki().ca_pem, identity)
}

/// An HTTPS client trusting the test CA whose connections come from `local`, a loopback
/// address other than 127.0.0.1 (all of 127.0.0.0/8 is loopback on Linux): a second
/// client address for tests of per-address behaviour.
pub fn https_client_from(local: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(&pki().ca_pem, None))
        .local_address(local)
        .build()
        .expect("reqwest")
}

pub fn https_client_trusting(
    ca_pem: &str,
    identity: Option<&parley_homeserver::devcerts::IssuedCert>,
) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(ca_pem, identity))
        .build()
        .expect("reqwest")
}

/// TLS trusting `ca_pem`, presenting `identity` when asked for a client certificate.
fn tls_config(ca_pem: &str, identity: Option<&parley_homeserver::devcerts::IssuedCert>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate pem");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key pem");
            builder.with_client_auth_cert(chain, key).expect("client certificate")
        }
    }
}

pub struct TestServer {
    pub config: Config,
    pub addr: SocketAddr,
    /// Where the federation API listens, when the configuration enables it.
    pub federation_addr: Option<SocketAddr>,
    /// Where the admin API listens, when the configuration has `[admin]` (see `admin`).
    pub admin_addr: Option<SocketAddr>,
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

    /// A homeserver whose federation API listens too (mutual TLS, trusting the test CA),
    /// with its signing key in `dir`.
    pub async fn spawn_federating(dir: &std::path::Path) -> Self {
        Self::spawn_federating_as("test.parley", dir, &[]).await
    }

    /// A federating homeserver named `name`, with a certificate for that name (and
    /// localhost) and its signing key in `dir`, that reaches the given servers at their
    /// loopback federation addresses.
    pub async fn spawn_federating_as(name: &str, dir: &std::path::Path, peers: &[&TestServer]) -> Self {
        let peers = peers
            .iter()
            .map(|p| (p.server_name().clone(), p.federation_addr.expect("a federating peer")))
            .collect();
        Self::spawn_federating_with(name, dir, (Ipv4Addr::LOCALHOST, 0).into(), peers, |_| {}).await
    }

    /// A federating homeserver on `listen`, reaching `peers` at the given addresses
    /// (servers that must reach each other need their addresses before either starts:
    /// see `free_loopback_addr`), after letting the test adjust the federation settings.
    pub async fn spawn_federating_with(
        name: &str,
        dir: &std::path::Path,
        listen: SocketAddr,
        peers: Vec<(ServerName, SocketAddr)>,
        adjust: impl FnOnce(&mut FederationConfig),
    ) -> Self {
        Self::start(federating_config(name, dir, listen, peers, adjust).await).await
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
        let federation_addr = app.federation_addr();
        let admin_addr = app.admin_addr();
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        let mut config = config;
        // A restart must come back on the same port for clients holding the URL.
        config.listen.client = addr;
        if let (Some(federation), Some(bound)) = (config.federation.as_mut(), federation_addr) {
            federation.listen = bound;
        }
        if let (Some(admin), Some(bound)) = (config.admin.as_mut(), admin_addr) {
            admin.listen = bound;
        }
        Self {
            federation_addr,
            admin_addr,
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
        https_client(None)
    }

    /// `https://localhost:<federation port><path>`; panics if federation is off.
    pub fn federation_url(&self, path: &str) -> String {
        let addr = self.federation_addr.expect("federation is enabled");
        format!("https://localhost:{}{path}", addr.port())
    }

    pub fn endpoint_url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn ca_file(&self) -> PathBuf {
        ca_file()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = self.endpoint_url(parley_specs::endpoints::ops::METRICS.path);
        let response = self
            .http()
            .get(url)
            .bearer_auth(metrics_token())
            .send()
            .await
            .expect("GET /metrics");
        response.text().await.expect("metrics text")
    }

    /// Runs a `SELECT count(*) …` on this server's database.
    pub async fn count(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
        self.db().await.query_one(sql, params).await.expect(sql).get(0)
    }

    /// The sequence numbers of `group`'s messages stored here, in order.
    pub async fn stored_seqs(&self, group: &parley_specs::GroupId) -> Vec<i64> {
        self.db()
            .await
            .query(
                "SELECT seq FROM group_messages WHERE group_id = $1 ORDER BY seq",
                &[&group.as_str()],
            )
            .await
            .expect("stored seqs")
            .iter()
            .map(|r| r.get(0))
            .collect()
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

/// The configuration of a federating homeserver named `name` on a fresh database, with a
/// certificate for that name (and localhost) and its signing key in `dir`, whose
/// federation API listens on `listen` and reaches `peers` at the given addresses.
pub async fn federating_config(
    name: &str,
    dir: &std::path::Path,
    listen: SocketAddr,
    peers: Vec<(ServerName, SocketAddr)>,
    adjust: impl FnOnce(&mut FederationConfig),
) -> Config {
    let host = ServerName::parse(name).expect("server name").host().to_owned();
    let issued = issue_cert(&[&host, "localhost", "127.0.0.1"]);
    let (cert, key) = (dir.join("tls.pem"), dir.join("tls.key"));
    std::fs::write(&cert, issued.cert_pem).expect("write certificate");
    std::fs::write(&key, issued.key_pem).expect("write key");
    let mut config = default_config(fresh_database().await);
    config.server_name = ServerName::parse(name).expect("server name");
    config.tls = TlsConfig { cert, key };
    config.files.dir = dir.join("blobs");
    let mut federation = FederationConfig {
        listen,
        signing_key: dir.join("server.key"),
        trust_roots: Some(ca_file()),
        key_document_validity_secs: 3600,
        peers: peers.into_iter().collect(),
        well_known_server: None,
        reach_private_addresses: false,
        allow: None,
        deny: Default::default(),
        requests_per_origin_per_minute: 60_000,
        hub_questions_per_user_per_minute: 600,
        max_transaction_messages: 200,
        max_transaction_bytes: 8 * 1024 * 1024,
        retry_initial_ms: 100,
        retry_max_secs: 2,
    };
    adjust(&mut federation);
    config.federation = Some(federation);
    config
}

/// The configuration `TestServer::spawn` starts with, on a fresh database (e.g. for a
/// `ProcessServer`).
pub async fn test_config() -> Config {
    default_config(fresh_database().await)
}

/// The configuration `TestServer::spawn` starts with, on the database at `database_url`
/// (e.g. an HA cluster's connection string).
pub fn config_on(database_url: String) -> Config {
    default_config(database_url)
}

/// The CA every test server's certificate comes from, as PEM.
pub fn ca_pem() -> String {
    pki().ca_pem.clone()
}

fn default_config(database_url: String) -> Config {
    let pki = pki();
    Config {
        server_name: ServerName::parse("test.parley").expect("server name"),
        listen: ListenConfig {
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            workers: 2,
            trusted_proxies: Vec::new(),
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
        limits: LimitsConfig {
            // Tests read the database-wide gauges soon after changing what they count.
            database_gauges_secs: 1,
            ..LimitsConfig::default()
        },
        log: LogConfig::default(),
        federation: None,
        admin: None,
        metrics: MetricsConfig {
            token_file: Some(pki.metrics_token_file.clone()),
        },
        retention: Default::default(),
        files: FilesConfig {
            // Each server its own store; federating servers keep theirs in their directory.
            dir: std::env::temp_dir().join(format!("parley-test-blobs-{}", rand_suffix())),
            sweep_interval_secs: 1,
            ..FilesConfig::default()
        },
        second_factor: Default::default(),
        key_backup: Default::default(),
        // New devices are published (and so trusted by other users' devices) quickly.
        transparency: TransparencyConfig {
            epoch_interval_ms: 100,
            audit_interval_secs: 2,
            ..TransparencyConfig::default()
        },
    }
}

fn rand_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 12)
}

/// The value of the series `series` (its name with its labels, as `/metrics` writes
/// them) in a Prometheus text; 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The token test servers want for `/metrics`.
pub fn metrics_token() -> &'static str {
    &pki().metrics_token
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
