//! A PostgreSQL high-availability cluster on loopback, as an operator would run one:
//! Patroni (Debian's `patroni`) managing one primary and one synchronous standby, with a
//! one-member etcd (Debian's `etcd-server`) as its consensus store. For tests that kill
//! the primary and watch the standby take over.
//!
//! Everything runs on 127.0.0.1 from one temporary directory owned by the `postgres`
//! user (PostgreSQL refuses root); Patroni runs as that user. Programs that cannot bind
//! port 0 get ports from `free_loopback_addr`. Every wait is on a condition (Patroni's
//! REST API: `GET /primary` answers 200 on the leader, `GET /sync` on the synchronous
//! standby) with a deadline. Dropping the cluster kills what it started and removes the
//! directory; a watchdog does the same if the test process dies first.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::free_loopback_addr;

/// The cluster's name in etcd (Patroni's `scope`).
const SCOPE: &str = "parley-test";
/// The superuser Patroni creates; trusted on loopback, no password.
pub const SUPERUSER: &str = "postgres";

/// Why a Patroni cluster cannot run on this machine, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    let on_path = |program: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
    };
    let missing: Vec<&str> = ["patroni", "patronictl", "etcd"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} not installed (Debian: apt-get install patroni etcd-server)",
            missing.join(", ")
        ));
    }
    if parley_homeserver::embedded_pg::find_bin_dir().is_none() {
        return Some("no PostgreSQL server binaries".into());
    }
    if nix::unistd::User::from_name("postgres").ok().flatten().is_none() {
        return Some("no `postgres` system user to run PostgreSQL as".into());
    }
    None
}

/// One Patroni node: its REST API and its PostgreSQL.
pub struct Node {
    pub name: String,
    pub rest: SocketAddr,
    pub postgres: SocketAddr,
    config: PathBuf,
    data_dir: PathBuf,
    patroni: Option<Child>,
}

impl Node {
    /// The PID of the node's postmaster, from its `postmaster.pid`.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    pub fn is_running(&self) -> bool {
        self.patroni.is_some()
    }
}

pub struct PatroniCluster {
    pub nodes: Vec<Node>,
    etcd: Option<Child>,
    dir: PathBuf,
    http: reqwest::Client,
    _watchdog: Option<Child>,
}

impl PatroniCluster {
    /// Starts etcd and two Patroni nodes, and waits (up to `deadline`) until one leads
    /// and the other is its synchronous standby. Panics with the nodes' logs otherwise.
    pub async fn start(deadline: Duration) -> Self {
        let bin_dir = parley_homeserver::embedded_pg::find_bin_dir().expect("PostgreSQL binaries");
        // Patroni's REST API is plain HTTP on loopback.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let postgres = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .expect("the postgres user");
        let dir = std::env::temp_dir().join(format!(
            "parley-patroni-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let (etcd_client, etcd_peer) = (free_loopback_addr(), free_loopback_addr());
        let mut nodes = Vec::new();
        for i in 1..=2 {
            let name = format!("node{i}");
            let (rest, pg) = (free_loopback_addr(), free_loopback_addr());
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir).expect("node directory");
            let config = dir.join(format!("{name}.yml"));
            let data_dir = node_dir.join("data");
            std::fs::write(
                &config,
                node_config(&name, rest, pg, etcd_client, &node_dir, &data_dir, &bin_dir),
            )
            .expect("write the Patroni configuration");
            nodes.push(Node {
                name,
                rest,
                postgres: pg,
                config,
                data_dir,
                patroni: None,
            });
        }
        chown_tree(&dir, postgres.uid.as_raw(), postgres.gid.as_raw());
        let etcd = Command::new("etcd")
            .args(["--name", "default", "--data-dir"])
            .arg(dir.join("etcd"))
            .arg(format!("--listen-client-urls=http://{etcd_client}"))
            .arg(format!("--advertise-client-urls=http://{etcd_client}"))
            .arg(format!("--listen-peer-urls=http://{etcd_peer}"))
            .arg(format!("--initial-advertise-peer-urls=http://{etcd_peer}"))
            .arg(format!("--initial-cluster=default=http://{etcd_peer}"))
            .stdin(Stdio::null())
            .stdout(log_file(&dir, "etcd.log"))
            .stderr(log_file(&dir, "etcd.log"))
            .spawn()
            .expect("start etcd");
        let mut cluster = Self {
            nodes,
            etcd: Some(etcd),
            dir,
            http,
            _watchdog: None,
        };
        for i in 0..cluster.nodes.len() {
            cluster.start_node(i, postgres.uid.as_raw(), postgres.gid.as_raw());
        }
        cluster._watchdog = Some(cluster.watchdog());
        let ready = crate::wait_until(deadline, || async {
            let leader = cluster.leader().await;
            let standby = cluster.sync_standby().await;
            leader.is_some() && standby.is_some()
        })
        .await;
        assert!(
            ready,
            "Patroni did not elect a leader with a synchronous standby within {deadline:?}\n{}",
            cluster.logs()
        );
        cluster
    }

    fn start_node(&mut self, i: usize, uid: u32, gid: u32) {
        let node = &mut self.nodes[i];
        let log = self.dir.join(format!("{}.log", node.name));
        let out = std::fs::File::create(&log).expect("log file");
        std::os::unix::fs::chown(&log, Some(uid), Some(gid)).expect("chown log");
        let child = Command::new("patroni")
            .arg(&node.config)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start patroni");
        node.patroni = Some(child);
    }

    /// A shell that outlives this process: once it is gone, kills Patroni, the
    /// postmasters and etcd, and removes the directory.
    fn watchdog(&self) -> Child {
        let patronis: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.patroni.as_ref().map(|c| c.id().to_string()))
            .collect();
        let etcd = self.etcd.as_ref().map(|c| c.id().to_string()).unwrap_or_default();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; kill -9 {patronis} 2>/dev/null; \
             for f in '{dir}'/node*/data/postmaster.pid; do [ -f \"$f\" ] && kill -9 $(head -1 \"$f\") 2>/dev/null; done; \
             kill -9 {etcd} 2>/dev/null; sleep 1; rm -rf '{dir}'",
            me = std::process::id(),
            patronis = patronis.join(" "),
            dir = self.dir.display(),
        );
        crate::postgres::detached_shell(&script, "the Patroni watchdog")
    }

    /// A connection string naming every node, for the primary only:
    /// `host=127.0.0.1,127.0.0.1 port=P1,P2 … target_session_attrs=read-write`.
    pub fn url(&self, database: &str) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| n.postgres.ip().to_string()).collect();
        let ports: Vec<String> = self.nodes.iter().map(|n| n.postgres.port().to_string()).collect();
        format!(
            "host={} port={} user={SUPERUSER} dbname={database} sslmode=disable connect_timeout=2 \
             target_session_attrs=read-write",
            hosts.join(","),
            ports.join(",")
        )
    }

    /// Creates `name` on the primary (it reaches the standby by replication).
    pub async fn create_database(&self, name: &str) {
        let primary = self.url("postgres").parse().expect("the cluster's URL");
        crate::postgres::batch_execute(&primary, &format!("CREATE DATABASE \"{name}\"")).await;
    }

    /// The index of the node whose REST API says it is the primary.
    pub async fn leader(&self) -> Option<usize> {
        self.first_answering_200("/primary").await
    }

    /// The index of the node whose REST API says it is a synchronous standby.
    pub async fn sync_standby(&self) -> Option<usize> {
        self.first_answering_200("/sync").await
    }

    async fn first_answering_200(&self, path: &str) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let url = format!("http://{}{path}", node.rest);
            if let Ok(response) = self.http.get(url).send().await
                && response.status().as_u16() == 200
            {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a node other than `old` leads; returns it.
    pub async fn wait_for_new_leader(&self, old: usize, deadline: Duration) -> Option<usize> {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(leader) = self.leader().await
                && leader != old
            {
                return Some(leader);
            }
            if tokio::time::Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL to the node's Patroni and to its PostgreSQL (the postmaster and every
    /// backend), as when its machine dies: nothing shuts down cleanly, no connection is
    /// closed politely.
    pub fn kill_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut patroni) = node.patroni.take() {
            let _ = patroni.kill();
            let _ = patroni.wait();
        }
        if let Some(postmaster) = node.postmaster_pid() {
            let mut pids = children_of(postmaster);
            pids.push(postmaster);
            for pid in pids {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    /// `patronictl list`: who leads, who is a synchronous standby.
    pub fn list(&self) -> String {
        let Some(node) = self.nodes.iter().find(|n| n.is_running()) else {
            return "no node running".into();
        };
        match Command::new("patronictl")
            .arg("-c")
            .arg(&node.config)
            .arg("list")
            .output()
        {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("patronictl: {e}"),
        }
    }

    /// The last lines of every log, for a failure message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["etcd.log", "node1.log", "node2.log"] {
            let log = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(25)..];
            text.push_str(&format!("--- {name}\n{}\n", tail.join("\n")));
        }
        text
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        // Cleaning up here: the watchdog must not act on these PIDs later.
        if let Some(mut watchdog) = self._watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node_config(
    name: &str,
    rest: SocketAddr,
    pg: SocketAddr,
    etcd: SocketAddr,
    node_dir: &Path,
    data_dir: &Path,
    bin_dir: &Path,
) -> String {
    // ttl 10 s and loop_wait 2 s (Patroni's defaults are 30 and 10) so a failover takes
    // seconds; retry_timeout so that loop_wait + 2 × retry_timeout <= ttl.
    // synchronous_mode: a commit is acknowledged only once the standby has it, and only
    // that standby may be promoted, so no acknowledged commit is lost. Not strict: the
    // promoted standby, now alone, takes writes (strict mode would refuse them until a
    // new standby joins).
    format!(
        "scope: {SCOPE}
name: {name}
restapi:
  listen: {rest}
  connect_address: {rest}
etcd3:
  host: {etcd}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 200
        wal_level: replica
        hot_standby: 'on'
  initdb:
    - encoding: UTF8
    - locale: C
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: {pg}
  connect_address: {pg}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {node}/pgpass
  authentication:
    superuser:
      username: {SUPERUSER}
    replication:
      username: replicator
  parameters:
    unix_socket_directories: '{node}'
",
        data = data_dir.display(),
        bin = bin_dir.display(),
        node = node_dir.display(),
    )
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("log file")
}

/// Gives `dir` and everything in it to `uid:gid`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            chown_tree(&path, uid, gid);
        } else {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        }
    }
}

/// The processes whose parent is `parent` (a postmaster's backends and workers).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // Field 4 is the parent's PID; field 2 (the name) may hold spaces but
                // ends with the last ')'.
                .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
                .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                == Some(parent)
        })
        .collect()
}
