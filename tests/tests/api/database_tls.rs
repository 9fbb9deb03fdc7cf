//! TLS between the homeserver and PostgreSQL: libpq's `sslmode` and `sslrootcert` in
//! `database.url`, against a PostgreSQL of its own that accepts TLS connections only and
//! holds a certificate of a private CA.

use std::time::Duration;

use parley_homeserver::config::DatabaseConfig;
use parley_homeserver::db;
use parley_homeserver::devcerts::DevCa;
use parley_homeserver::embedded_pg::{Durability, PgCluster};
use parley_tests::TestServer;
use parley_tests::server::{test_config, wait_until};

/// A throwaway cluster serving TLS only, with a certificate for `localhost` only (not
/// for 127.0.0.1), and the CA that issued it in a file.
struct TlsPostgres {
    cluster: PgCluster,
    root: std::path::PathBuf,
    ca_file: std::path::PathBuf,
    other_ca_file: std::path::PathBuf,
}

impl TlsPostgres {
    fn start() -> Self {
        let root = std::env::temp_dir().join(format!("parley-tls-pg-{}", rand_suffix()));
        let cluster = PgCluster::start(&root, Durability::Throwaway).expect("a PostgreSQL cluster");
        let ca = DevCa::generate("database CA").unwrap();
        let cert = ca.issue(&["localhost"]).unwrap();
        cluster.serve_tls_only(&cert.cert_pem, &cert.key_pem).expect("TLS on");
        let files = tempfile::tempdir().unwrap().keep();
        let ca_file = files.join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let other_ca_file = files.join("other-ca.pem");
        std::fs::write(&other_ca_file, DevCa::generate("another CA").unwrap().cert_pem()).unwrap();
        Self {
            cluster,
            root,
            ca_file,
            other_ca_file,
        }
    }

    /// The cluster's URL for database `postgres` on `host`, with `options`.
    fn url(&self, host: &str, options: &str) -> String {
        let url = self.cluster.url("postgres").replace("127.0.0.1", host);
        format!("{url}?{options}")
    }

    fn verified(&self, mode: &str, host: &str, ca: &std::path::Path) -> String {
        self.url(host, &format!("sslmode={mode}&sslrootcert={}", ca.display()))
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn rand_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8)
}

/// Migrates through a pool on `url`; whether its connection is encrypted, or the error.
async fn connect(url: String) -> Result<bool, String> {
    let config = DatabaseConfig {
        url,
        pool_size: 1,
        pool_timeout_ms: 10_000,
    };
    let pool = db::create_pool(&config).map_err(|e| e.to_string())?;
    db::migrate(&pool).await.map_err(|e| e.to_string())?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[tokio::test]
async fn the_homeserver_reaches_postgresql_over_tls_checked_as_sslmode_says() {
    let pg = TlsPostgres::start();

    // verify-full: the chain leads to the CA and the certificate names the host.
    assert_eq!(
        connect(pg.verified("verify-full", "localhost", &pg.ca_file)).await,
        Ok(true)
    );
    // ...not to another CA, and not under a name the certificate lacks.
    let wrong_ca = connect(pg.verified("verify-full", "localhost", &pg.other_ca_file)).await;
    assert!(
        wrong_ca.as_ref().is_err_and(|e| e.contains("certificate")),
        "{wrong_ca:?}"
    );
    let wrong_name = connect(pg.verified("verify-full", "127.0.0.1", &pg.ca_file)).await;
    assert!(
        wrong_name.as_ref().is_err_and(|e| e.contains("certificate")),
        "{wrong_name:?}"
    );
    // verify-ca checks the chain only; require encrypts without checking.
    assert_eq!(
        connect(pg.verified("verify-ca", "127.0.0.1", &pg.ca_file)).await,
        Ok(true)
    );
    let wrong_ca = connect(pg.verified("verify-ca", "127.0.0.1", &pg.other_ca_file)).await;
    assert!(wrong_ca.is_err(), "{wrong_ca:?}");
    assert_eq!(connect(pg.url("127.0.0.1", "sslmode=require")).await, Ok(true));
    // Without TLS this server lets nobody in.
    let plain = connect(pg.url("127.0.0.1", "sslmode=disable")).await;
    assert!(plain.as_ref().is_err_and(|e| e.contains("pg_hba")), "{plain:?}");
    let bad_mode = connect(pg.url("localhost", "sslmode=sometimes")).await;
    assert!(
        bad_mode.as_ref().is_err_and(|e| e.contains("sslmode=sometimes")),
        "{bad_mode:?}"
    );

    // A whole homeserver on it.
    let mut config = test_config().await;
    config.database.url = pg.verified("verify-full", "localhost", &pg.ca_file);
    let server = TestServer::start(config).await;
    let ready = server.sdk().ready().await.expect("/ready answers");
    assert!(ready.ready, "{ready:?}");
    // Its cross-process wake-ups listen on a TLS connection of their own.
    let relayed = wait_until(Duration::from_secs(30), || async {
        server.metrics().await.contains("parley_wakeup_relay_connected 1")
    })
    .await;
    assert!(relayed, "the wake-up relay connected over TLS");
}
