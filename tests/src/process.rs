//! Homeservers as separate processes: the `parley-homeserver` binary with a configuration
//! file, killed with SIGKILL and restarted on the same ports and database. What a crash
//! test needs that an in-process server (stopped gracefully) cannot show. Several
//! processes may serve one domain over one database (`start_replicas`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use parley_homeserver::config::Config;
use parley_sdk::{Client, Trust};

use crate::server::{ca_pem, free_loopback_addr};

/// Where `cargo test --workspace` puts this workspace's binary `name`: beside the test
/// executables (`target/<profile>/deps/<test>` -> `target/<profile>/<name>`).
pub fn built_binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("target directory")
}

fn built_binary(name: &str) -> PathBuf {
    let bin = built_binary_path(name);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --bin {name}` first)",
        bin.display()
    );
    bin
}

/// The `parley-homeserver` binary.
pub fn binary() -> PathBuf {
    built_binary("parley-homeserver")
}

/// The `parley` CLI binary.
pub fn parley_binary() -> PathBuf {
    built_binary("parley")
}

pub struct ProcessServer {
    pub config: Config,
    /// `https://localhost:<port>`
    pub url: String,
    config_path: PathBuf,
    /// Variables set in the process's environment besides the test process's own.
    env: Vec<(String, String)>,
    /// Where the process's log goes (at `info`), when not to the test's stderr (errors only).
    log_file: Option<PathBuf>,
    child: Option<Child>,
}

impl ProcessServer {
    /// Starts the binary with `config` (its client and federation ports fixed here if 0,
    /// so a restart comes back on them), written to `dir`; waits until it is ready.
    pub async fn start(config: Config, dir: &Path) -> Self {
        Self::start_with_env(config, dir, &[]).await
    }

    /// Like `start`, with these variables in the process's environment (kept for restarts).
    pub async fn start_with_env(config: Config, dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_inner(config, dir, env, false).await
    }

    async fn start_inner(mut config: Config, dir: &Path, env: &[(&str, &str)], logged: bool) -> Self {
        if config.listen.client.port() == 0 {
            config.listen.client = free_loopback_addr();
        }
        if let Some(federation) = config.federation.as_mut()
            && federation.listen.port() == 0
        {
            federation.listen = free_loopback_addr();
        }
        let config_path = dir.join(format!("homeserver-{}.toml", config.listen.client.port()));
        std::fs::write(&config_path, toml::to_string(&config).expect("config as TOML")).expect("write config");
        let log_file = logged.then(|| dir.join(format!("homeserver-{}.log", config.listen.client.port())));
        let mut server = Self {
            url: format!("https://localhost:{}", config.listen.client.port()),
            config,
            config_path,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log_file,
            child: None,
        };
        server.restart().await;
        server
    }

    /// Like `start`, the process logging at `info` to `<dir>/homeserver-<port>.log`
    /// (`log_file`), for tests that read what a server logged.
    pub async fn start_logged(config: Config, dir: &Path) -> Self {
        Self::start_inner(config, dir, &[], true).await
    }

    /// The file this process logs to (see `start_logged`).
    pub fn log_file(&self) -> Option<&Path> {
        self.log_file.as_deref()
    }

    /// Starts the process again (after `kill`) and waits until it is ready.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let (level, stderr) = match &self.log_file {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("open the log file");
                ("info", Stdio::from(file))
            }
            None => ("error", Stdio::inherit()),
        };
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", level)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start parley-homeserver");
        self.child = Some(child);
        let client = self.sdk();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if client.ready().await.is_ok_and(|r| r.ready) {
                return;
            }
            // A process that stopped will not become ready: say so now, not in a minute.
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("{} exited before it was ready: {status}", self.config.server_name);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not become ready",
                self.config.server_name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `n` processes of one domain over `config`'s database, each on its own client and
    /// federation ports (sharing the key file and certificate), started together.
    pub async fn start_replicas(config: Config, dir: &Path, n: usize) -> Vec<Self> {
        let replicas = (0..n).map(|_| {
            let mut config = config.clone();
            config.listen.client = free_loopback_addr();
            if let Some(federation) = config.federation.as_mut() {
                federation.listen = free_loopback_addr();
            }
            Self::start(config, dir)
        });
        futures_util::future::join_all(replicas).await
    }

    /// Where this process's federation API listens, when enabled.
    pub fn federation_addr(&self) -> Option<std::net::SocketAddr> {
        self.config.federation.as_ref().map(|f| f.listen)
    }

    /// The operating system's id of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGSTOP or SIGCONT: the process stops answering (its sockets stay open) or resumes.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits up to `within` for the process to exit by itself (e.g. after a SIGTERM sent
    /// with `signal`); its exit status, or `None` if it is still running.
    pub async fn wait_for_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("wait for the process") {
                self.child = None;
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILL: no graceful shutdown, whatever was in flight is cut off.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// An SDK client trusting the test CA, not logged in.
    pub fn sdk(&self) -> Client {
        Client::new(self.url.parse().expect("url"), Trust::CaPem(ca_pem().into_bytes())).expect("client")
    }

    /// The value of the metric named exactly `series` (with its labels, as
    /// `/metrics` writes them); 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = crate::server::https_client(None)
            .get(format!("{}{}", self.url, parley_specs::endpoints::ops::METRICS.path))
            .bearer_auth(crate::server::metrics_token())
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        crate::server::metric_value(&text, series)
    }

    /// Runs a `SELECT count(*) …` on this server's database.
    pub async fn count(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.config.database.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client.query_one(sql, params).await.expect(sql).get(0)
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        self.kill();
    }
}
