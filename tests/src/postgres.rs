//! One PostgreSQL per test process, one database per test.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use parley_homeserver::embedded_pg::{Durability, PgCluster};
use rand::distr::{Alphanumeric, SampleString};

enum Server {
    /// `DATABASE_URL`: an existing server where the test user may create databases.
    External(tokio_postgres::Config),
    Embedded(PgCluster),
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) => Server::External(url.parse().expect("DATABASE_URL is not a valid PostgreSQL URL")),
        Err(_) => Server::Embedded(start_embedded()),
    })
}

fn start_embedded() -> PgCluster {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let root = std::env::temp_dir().join(format!("parley-test-pg-{}-{suffix}", std::process::id()));
    let cluster = PgCluster::start(&root, Durability::Throwaway)
        .unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL for the tests: {e}"));
    stop_when_we_exit(&cluster, &root);
    cluster
}

/// Rust runs no destructors for statics, and a test process may be killed: a small
/// watchdog shell stops the cluster and removes its files once this process is gone.
fn stop_when_we_exit(cluster: &PgCluster, root: &std::path::Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf '{root}'",
        pid = std::process::id(),
        stop = cluster.stop_command_line(),
        root = root.display(),
    );
    // Deliberately never waited for: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    detached_shell(&script, "the PostgreSQL watchdog");
}

/// Starts `script` under `sh` with no standard streams: a watchdog that cleans up after
/// this process once it is gone, whatever way it ends.
pub fn detached_shell(script: &str, what: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
}

/// Creates an empty database for one test and returns its URL.
pub async fn fresh_database() -> String {
    let name = format!(
        "test_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 16).to_ascii_lowercase()
    );
    match server() {
        Server::Embedded(cluster) => {
            cluster.create_database(&name).await.expect("CREATE DATABASE");
            cluster.url(&name)
        }
        Server::External(config) => {
            batch_execute(config, &format!("CREATE DATABASE \"{name}\"")).await;
            let mut config = config.clone();
            config.dbname(&name);
            external_url(&config)
        }
    }
}

fn external_url(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
    let auth = password.map_or(user.to_owned(), |p| format!("{user}:{p}"));
    format!(
        "postgres://{auth}@{host}:{port}/{}",
        config.get_dbname().unwrap_or_default()
    )
}

/// Runs `sql` (one or more statements) on the database `config` names, over a
/// connection of its own.
pub async fn batch_execute(config: &tokio_postgres::Config, sql: &str) {
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
    let conn = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = conn.await;
}

/// The server of test database `url` as its maintenance database (`postgres`), and the
/// test database's name.
fn maintenance(url: &str) -> (tokio_postgres::Config, String) {
    let mut config: tokio_postgres::Config = url.parse().expect("url");
    let name = config.get_dbname().expect("database name").to_owned();
    config.dbname("postgres");
    (config, name)
}

/// Drops a test database out from under its server (`WITH (FORCE)` ends its connections),
/// to see how the server behaves without its database.
pub async fn drop_database(url: &str) {
    let (admin, name) = maintenance(url);
    batch_execute(&admin, &format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await;
}

/// Makes a test database refuse writes (`default_transaction_read_only`), as a standby
/// does, or take them again; ends its connections so that new ones get the setting.
pub async fn set_read_only(url: &str, read_only: bool) {
    let (admin, name) = maintenance(url);
    let value = if read_only { "on" } else { "off" };
    let mut sql = format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = {value};");
    if read_only {
        // Test database names are letters, digits and `_` (`fresh_database`).
        sql += &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';");
    }
    batch_execute(&admin, &sql).await;
}
