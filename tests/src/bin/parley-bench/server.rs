//! A homeserver of our own for a benchmark: a durable private PostgreSQL cluster and the
//! release `parley-homeserver` binary as a separate process, as an operator would run it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_homeserver::devcerts::DevCa;
use parley_homeserver::embedded_pg::{Durability, PgCluster};

use crate::load::Target;

pub struct BenchServer {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub database_url: String,
    pub server_name: String,
    /// What `/metrics` wants (`[metrics] token_file`).
    pub metrics_token: String,
    config_path: PathBuf,
    child: Option<Child>,
    /// More processes of the same homeserver (same database and keys), on their own ports.
    replicas: Vec<Child>,
    cluster: PgCluster,
    pg_root: PathBuf,
    _dir: tempfile::TempDir,
}

/// How a benchmark server federates: its name, its federation address, and where its
/// peers listen. Every server's certificate comes from the CA given to `start_with`.
pub struct Federation {
    pub name: String,
    pub listen: SocketAddr,
    pub peers: Vec<(String, SocketAddr)>,
}

/// A free loopback address (for servers that must know each other's before starting).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

impl BenchServer {
    pub async fn start(pool_size: usize) -> anyhow::Result<Self> {
        let ca = DevCa::generate("Parley bench CA")?;
        Self::start_with(pool_size, &ca, None).await
    }

    /// `a.bench` and `b.bench`, each with its own durable PostgreSQL, peers of each other.
    pub async fn start_federating_pair(pool_size: usize, ca: &DevCa) -> anyhow::Result<(Self, Self)> {
        Self::start_federating_pair_configured(pool_size, ca, |_| {}).await
    }

    /// As `start_federating_pair`, with `adjust` applied to both configurations (as JSON).
    pub async fn start_federating_pair_configured(
        pool_size: usize,
        ca: &DevCa,
        adjust: impl Fn(&mut serde_json::Value),
    ) -> anyhow::Result<(Self, Self)> {
        let (a_fed, b_fed) = (free_addr()?, free_addr()?);
        let federation = |name: &str, listen, peer: &str, peer_addr| Federation {
            name: name.into(),
            listen,
            peers: vec![(peer.into(), peer_addr)],
        };
        let a_federation = Some(federation("a.bench", a_fed, "b.bench", b_fed));
        let a = Self::start_configured(pool_size, ca, a_federation, &adjust).await?;
        let b_federation = Some(federation("b.bench", b_fed, "a.bench", a_fed));
        let b = Self::start_configured(pool_size, ca, b_federation, &adjust).await?;
        Ok((a, b))
    }

    pub async fn start_with(pool_size: usize, ca: &DevCa, federation: Option<Federation>) -> anyhow::Result<Self> {
        Self::start_configured(pool_size, ca, federation, |_| {}).await
    }

    /// As `start_with`, with `adjust` applied to the configuration (as JSON) before it is written.
    pub async fn start_configured(
        pool_size: usize,
        ca: &DevCa,
        federation: Option<Federation>,
        adjust: impl FnOnce(&mut serde_json::Value),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("parley-bench").tempdir_in("/tmp")?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let pg_root = dir.path().join("postgres");
        let cluster = {
            let pg_root = pg_root.clone();
            tokio::task::spawn_blocking(move || PgCluster::start(&pg_root, Durability::Durable)).await??
        };
        cluster.create_database("parley").await?;
        let port = free_addr()?.port();
        let server_name = federation
            .as_ref()
            .map_or_else(|| format!("localhost:{port}"), |f| f.name.clone());
        let issued = ca.issue(&[server_name.as_str(), "localhost", "127.0.0.1"])?;
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        std::fs::write(&cert, issued.cert_pem)?;
        std::fs::write(&key, issued.key_pem)?;
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem())?;
        let database_url = cluster.url("parley");
        let metrics_token_file = dir.path().join("metrics.token");
        parley_homeserver::token_file::create_if_missing(&metrics_token_file)?;
        let metrics_token = parley_homeserver::token_file::load(&metrics_token_file)?;
        let mut config = serde_json::json!({
            "server_name": server_name,
            "listen": { "client": format!("127.0.0.1:{port}") },
            "tls": { "cert": cert, "key": key },
            "database": { "url": database_url, "pool_size": pool_size },
            "limits": {
                "login_attempts_per_address_per_minute": 1_000_000,
                "login_failures_per_account_and_address_per_minute": 1_000_000,
                "login_failures_per_account_per_hour": 1_000_000,
                "key_package_claims_per_account_per_minute": 1_000_000,
                "messages_per_device_per_minute": 100_000_000,
                "max_body_bytes": 1_048_576,
            },
            "log": { "level": "warn" },
            "metrics": { "token_file": metrics_token_file },
            "files": { "dir": dir.path().join("blobs") },
        });
        if let Some(federation) = &federation {
            let peers: serde_json::Map<String, serde_json::Value> = federation
                .peers
                .iter()
                .map(|(name, addr)| (name.clone(), addr.to_string().into()))
                .collect();
            config["federation"] = serde_json::json!({
                "listen": federation.listen.to_string(),
                "signing_key": dir.path().join("signing.key"),
                "trust_roots": ca_path,
                "peers": peers,
                "requests_per_origin_per_minute": 100_000_000,
                "retry_initial_ms": 200,
                "retry_max_secs": 600,
            });
        }
        adjust(&mut config);
        let config = toml::Table::try_from(config)?;
        let config_path: PathBuf = dir.path().join("homeserver.toml");
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        let mut server = Self {
            url: format!("https://localhost:{port}"),
            ca_pem: ca.cert_pem().into_bytes(),
            database_url,
            server_name,
            metrics_token,
            config_path,
            child: None,
            replicas: Vec::new(),
            cluster,
            pg_root,
            _dir: dir,
        };
        server.start_process().await?;
        Ok(server)
    }

    /// Where clients reach the first process.
    pub fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            server_name: self.server_name.clone(),
        }
    }

    /// Starts the homeserver process (again) and waits until it is ready.
    pub async fn start_process(&mut self) -> anyhow::Result<()> {
        self.child = Some(spawn(&self.config_path)?);
        wait_ready(&self.url, &self.ca_pem).await
    }

    /// Starts one more process of this homeserver (a federating one is not supported:
    /// its federation port is fixed) and waits until it is ready.
    pub async fn start_replica(&mut self) -> anyhow::Result<Target> {
        let mut config: toml::Table = toml::from_str(&std::fs::read_to_string(&self.config_path)?)?;
        if config.contains_key("federation") {
            bail!("replicas of a federating benchmark server are not supported");
        }
        let port = free_addr()?.port();
        if let Some(toml::Value::Table(listen)) = config.get_mut("listen") {
            listen.insert("client".into(), format!("127.0.0.1:{port}").into());
        }
        let path = self.config_path.with_file_name(format!("homeserver-{port}.toml"));
        std::fs::write(&path, toml::to_string(&config)?)?;
        self.replicas.push(spawn(&path)?);
        let url = format!("https://localhost:{port}");
        wait_ready(&url, &self.ca_pem).await?;
        Ok(Target {
            url,
            server_name: self.server_name.clone(),
        })
    }

    /// CPU time used so far by this homeserver's processes, its PostgreSQL and this
    /// load generator.
    pub fn cpu(&self) -> crate::cpu::Split {
        crate::cpu::Split {
            homeserver: self
                .child
                .iter()
                .chain(&self.replicas)
                .map(|c| crate::cpu::of_process(c.id()))
                .sum(),
            postgres: crate::cpu::of_postgres(&self.pg_root),
            generator: crate::cpu::of_process(std::process::id()),
        }
    }

    /// Resident memory of every process of this homeserver, summed.
    pub fn rss_bytes_all(&self) -> Option<u64> {
        let pids = self.child.iter().chain(&self.replicas).map(Child::id);
        pids.map(rss_of).sum()
    }

    /// Kills the homeserver process (its database stays up).
    pub fn kill_process(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Peak resident memory of the homeserver process since it started (`VmHWM`).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Resident memory of the homeserver process, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.child.as_ref()?.id())
    }

    /// A connection to the homeserver's database, for counting.
    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

fn spawn(config_path: &std::path::Path) -> anyhow::Result<Child> {
    // Another build of the homeserver, to compare versions: BENCH_PARLEY_HOMESERVER (not
    // PARLEY_*, which the homeserver reads as configuration).
    let binary = match std::env::var_os("BENCH_PARLEY_HOMESERVER") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name("parley-homeserver"),
    };
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release --bin parley-homeserver",
            binary.display()
        );
    }
    Command::new(&binary)
        .args(["serve", "--config"])
        .arg(config_path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

async fn wait_ready(url: &str, ca_pem: &[u8]) -> anyhow::Result<()> {
    let client = parley_sdk::Client::new(url.parse()?, parley_sdk::Trust::CaPem(ca_pem.to_vec()))?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if client.ready().await.is_ok_and(|r| r.ready) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the homeserver at {url} did not become ready within 60 s")
}

/// Resident memory of a process, from /proc.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        self.kill_process();
        for replica in &mut self.replicas {
            let _ = replica.kill();
            let _ = replica.wait();
        }
        let _ = self.cluster.stop();
    }
}
