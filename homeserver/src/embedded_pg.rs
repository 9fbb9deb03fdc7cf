//! A private PostgreSQL cluster built from the machine's PostgreSQL binaries, for
//! `parley-homeserver dev` and the test harness. PostgreSQL refuses to run as root,
//! so when we are root the cluster directory belongs to the `postgres` user and every
//! PostgreSQL command runs through `runuser -u postgres`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::distr::{Alphanumeric, SampleString};

use parley_private_file as private_file;

const SUPERUSER: &str = "parley";

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "no PostgreSQL server binaries found (looked for `pg_config --bindir` and /usr/lib/postgresql/*/bin); \
         install them, e.g. `apt-get install postgresql` on Debian/Ubuntu, or set database.url in a config file \
         and use `parley-homeserver serve`"
    )]
    NoBinaries,
    #[error("running as root, but there is no `postgres` system user to run PostgreSQL as (PostgreSQL refuses root)")]
    NoPostgresUser,
    #[error(
        "the postgres user cannot write {dir}: choose a directory it can reach, e.g. --data-dir /var/tmp/parley-dev"
    )]
    Unreachable { dir: PathBuf },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on commit, as in production (the dev server).
    Durable,
    /// No fsync: a machine crash may lose the cluster; fine for throwaway test data.
    Throwaway,
}

/// A running cluster that this process started (or found running in its directory).
#[derive(Debug)]
pub struct PgCluster {
    root: PathBuf,
    bin_dir: PathBuf,
    run_as_postgres: bool,
    port: u16,
    password: String,
}

impl PgCluster {
    /// Initializes the cluster under `root` if needed and starts it on a free loopback port.
    /// A cluster already running from `root` is reused.
    pub fn start(root: &Path, durability: Durability) -> Result<Self, PgError> {
        let bin_dir = find_bin_dir().ok_or(PgError::NoBinaries)?;
        let run_as_postgres = nix::unistd::geteuid().is_root();
        std::fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        if run_as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(PgError::NoPostgresUser)?;
            std::os::unix::fs::chown(&root, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        let mut cluster = Self {
            root,
            bin_dir,
            run_as_postgres,
            port: 0,
            password: String::new(),
        };
        cluster.check_reachable()?;
        if !cluster.data_dir().join("PG_VERSION").exists() {
            cluster.init()?;
        }
        cluster.password = std::fs::read_to_string(cluster.password_file())?.trim().to_owned();
        match cluster.running_port() {
            Some(port) => cluster.port = port,
            None => cluster.launch(durability)?,
        }
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db` as the cluster's superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}:{}@127.0.0.1:{}/{db}", self.password, self.port)
    }

    pub async fn create_database(&self, name: &str) -> Result<(), tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?;
        if exists.is_none() {
            // Identifiers cannot be bound as parameters; quote it instead.
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            client.batch_execute(&format!("CREATE DATABASE {quoted}")).await?;
        }
        drop(client);
        let _ = conn.await;
        Ok(())
    }

    /// Serves TLS with this certificate chain and key, and accepts TCP connections only
    /// over TLS from then on (`hostssl` in pg_hba.conf): for trying `sslmode=verify-full`
    /// against a private CA. Takes effect by a reload; connections already open stay.
    pub fn serve_tls_only(&self, cert_pem: &str, key_pem: &str) -> Result<(), PgError> {
        let data = self.data_dir();
        for (file, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            private_file::write(&data.join(file), pem.as_bytes())?;
            self.give_to_postgres(&data.join(file))?;
        }
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, "hostssl all all 127.0.0.1/32 scram-sha-256\n")?;
        self.give_to_postgres(&hba)?;
        let conf = data.join("postgresql.conf");
        let mut settings = std::fs::read_to_string(&conf)?;
        settings.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, settings)?;
        self.pg_command("pg_ctl reload", "pg_ctl", |c| {
            c.arg("-D").arg(self.data_dir()).arg("reload");
        })
        .map(drop)
    }

    /// Stops the cluster, waiting for a clean shutdown. Synchronous so it can run from
    /// signal and exit paths.
    pub fn stop(&self) -> Result<(), PgError> {
        self.pg_command("pg_ctl stop", "pg_ctl", |c| {
            c.arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        })
        .map(drop)
    }

    /// A shell command that stops this cluster immediately, for watchdogs that outlive us.
    pub fn stop_command_line(&self) -> String {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let prefix = if self.run_as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{prefix}'{}' -D '{}' -m immediate -w stop",
            pg_ctl.display(),
            self.data_dir().display()
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn password_file(&self) -> PathBuf {
        self.root.join("superuser-password")
    }

    fn check_reachable(&self) -> Result<(), PgError> {
        if !self.run_as_postgres {
            return Ok(());
        }
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-w"])
            .arg(&self.root)
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(PgError::Unreachable { dir: self.root.clone() })
        }
    }

    fn init(&self) -> Result<(), PgError> {
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
        private_file::write(&self.password_file(), password.as_bytes())?;
        self.give_to_postgres(&self.password_file())?;
        self.pg_command("initdb", "initdb", |c| {
            c.arg("-D")
                .arg(self.data_dir())
                .args([
                    "-U",
                    SUPERUSER,
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .arg(format!("--pwfile={}", self.password_file().display()));
        })?;
        Ok(())
    }

    fn launch(&mut self, durability: Durability) -> Result<(), PgError> {
        let port = free_port()?;
        let mut options =
            format!("-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300");
        if durability == Durability::Throwaway {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.root.join("postgres.log");
        self.pg_command("pg_ctl start", "pg_ctl", |c| {
            c.arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]);
        })?;
        self.port = port;
        Ok(())
    }

    /// The port of a postmaster already running from this data directory, if any.
    fn running_port(&self) -> Option<u16> {
        let running = self
            .pg_command("pg_ctl status", "pg_ctl", |c| {
                c.arg("-D").arg(self.data_dir()).arg("status");
            })
            .is_ok();
        if !running {
            return None;
        }
        // postmaster.pid: line 4 is the port.
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn give_to_postgres(&self, path: &Path) -> Result<(), PgError> {
        if self.run_as_postgres
            && let Ok(Some(user)) = nix::unistd::User::from_name("postgres")
        {
            std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        Ok(())
    }

    fn pg_command(&self, what: &str, program: &str, args: impl FnOnce(&mut Command)) -> Result<Output, PgError> {
        let binary = self.bin_dir.join(program);
        let mut command = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(binary);
            c
        } else {
            Command::new(binary)
        };
        args(&mut command);
        // PostgreSQL's children must not hold our stdout/stderr open.
        command.stdin(std::process::Stdio::null());
        let output = command.output()?;
        if output.status.success() {
            Ok(output)
        } else {
            let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            let detail = if detail.is_empty() {
                String::from_utf8_lossy(&output.stdout).trim().to_owned()
            } else {
                detail
            };
            Err(PgError::Command {
                what: what.into(),
                detail,
            })
        }
    }
}

/// `pg_config --bindir` when it points at a server installation, else the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian's layout).
pub fn find_bin_dir() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_server = |dir: &PathBuf| dir.join("initdb").exists() && dir.join("pg_ctl").exists();
    if let Some(dir) = from_pg_config.filter(has_server) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
