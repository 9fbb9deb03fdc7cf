//! A homeserver of our own for a benchmark: a durable private PostgreSQL cluster and the
//! release `parley-homeserver` binary as a separate process, as an operator would run it.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_homeserver::devcerts::DevCa;
use parley_homeserver::embedded_pg::{Durability, PgCluster};

pub struct BenchServer {
    pub url: String,
    pub ca_pem: Vec<u8>,
    pub database_url: String,
    pub server_name: String,
    child: Child,
    cluster: PgCluster,
    _dir: tempfile::TempDir,
}

impl BenchServer {
    pub async fn start(pool_size: usize) -> anyhow::Result<Self> {
        let binary = std::env::current_exe()?.with_file_name("parley-homeserver");
        if !binary.exists() {
            bail!(
                "{} is missing: cargo build --release --bin parley-homeserver",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new().prefix("parley-bench").tempdir_in("/tmp")?;
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let pg_root = dir.path().join("postgres");
        let cluster = tokio::task::spawn_blocking(move || PgCluster::start(&pg_root, Durability::Durable)).await??;
        cluster.create_database("parley").await?;
        let ca = DevCa::generate("Parley bench CA")?;
        let issued = ca.issue(&["localhost", "127.0.0.1"])?;
        let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        std::fs::write(&cert, issued.cert_pem)?;
        std::fs::write(&key, issued.key_pem)?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let server_name = format!("localhost:{port}");
        let database_url = cluster.url("parley");
        let config = toml::Table::try_from(serde_json::json!({
            "server_name": server_name,
            "listen": { "client": format!("127.0.0.1:{port}") },
            "tls": { "cert": cert, "key": key },
            "database": { "url": database_url, "pool_size": pool_size },
            "limits": {
                "login_attempts_per_address_per_minute": 1_000_000,
                "login_attempts_per_account_per_minute": 1_000_000,
                "key_package_claims_per_account_per_minute": 1_000_000,
                "messages_per_device_per_minute": 100_000_000,
                "max_body_bytes": 1_048_576,
            },
            "log": { "level": "warn" },
        }))?;
        let config_path: PathBuf = dir.path().join("homeserver.toml");
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        let child = Command::new(&binary)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let server = Self {
            url: format!("https://localhost:{port}"),
            ca_pem: ca.cert_pem().into_bytes(),
            database_url,
            server_name,
            child,
            cluster,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = parley_sdk::Client::new(self.url.parse()?, parley_sdk::Trust::CaPem(self.ca_pem.clone()))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if client.ready().await.is_ok_and(|r| r.ready) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the homeserver did not become ready within 60 s")
    }

    /// Resident memory of the homeserver process, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.cluster.stop();
    }
}
