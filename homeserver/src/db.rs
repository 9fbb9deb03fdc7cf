//! The PostgreSQL pool and the schema migrations embedded in this binary.
//!
//! Migrations are plain SQL files applied in order, all pending ones in one transaction,
//! under an advisory lock so several processes starting at once do not race.
//!
//! **High availability.** `database.url` may name several hosts (`host=a,b port=5432,5433
//! target_session_attrs=read-write`, or `postgres://a:5432,b:5433/db?target_session_attrs=read-write`):
//! a new connection goes to whichever of them accepts writes (with several hosts,
//! `read-write` is the default here). After a failover the pool finds the new primary by
//! itself: a connection whose server went away is closed and never handed out again
//! (`RecyclingMethod::Fast` checks that), and a connection found on a read-only server
//! (SQLSTATE 25006: the old primary came back as a standby behind a proxy) makes every
//! idle connection opened before it be dropped at its next checkout. Connecting and
//! waiting for a connection are bounded (`pool_timeout_ms`, `connect_timeout`), so while
//! no primary is reachable requests answer `503 database_unavailable` quickly.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::pg_tls;
use deadpool_postgres::{HookError, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::config::DatabaseConfig;

pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts_and_devices",
        sql: include_str!("../migrations/0001_accounts_and_devices.sql"),
    },
    Migration {
        version: 2,
        name: "key_packages",
        sql: include_str!("../migrations/0002_key_packages.sql"),
    },
    Migration {
        version: 3,
        name: "groups_and_inboxes",
        sql: include_str!("../migrations/0003_groups_and_inboxes.sql"),
    },
    Migration {
        version: 4,
        name: "federation_requests",
        sql: include_str!("../migrations/0004_federation_requests.sql"),
    },
    Migration {
        version: 5,
        name: "federated_groups",
        sql: include_str!("../migrations/0005_federated_groups.sql"),
    },
    Migration {
        version: 6,
        name: "admin",
        sql: include_str!("../migrations/0006_admin.sql"),
    },
    Migration {
        version: 7,
        name: "device_keys",
        sql: include_str!("../migrations/0007_device_keys.sql"),
    },
    Migration {
        version: 8,
        name: "key_package_claims",
        sql: include_str!("../migrations/0008_key_package_claims.sql"),
    },
    Migration {
        version: 9,
        name: "revoked_members",
        sql: include_str!("../migrations/0009_revoked_members.sql"),
    },
    Migration {
        version: 10,
        name: "group_info",
        sql: include_str!("../migrations/0010_group_info.sql"),
    },
    Migration {
        version: 11,
        name: "retention",
        sql: include_str!("../migrations/0011_retention.sql"),
    },
    Migration {
        version: 12,
        name: "second_factor",
        sql: include_str!("../migrations/0012_second_factor.sql"),
    },
    Migration {
        version: 13,
        name: "key_backup",
        sql: include_str!("../migrations/0013_key_backup.sql"),
    },
    Migration {
        version: 14,
        name: "group_leavers",
        sql: include_str!("../migrations/0014_group_leavers.sql"),
    },
    Migration {
        version: 15,
        name: "files",
        sql: include_str!("../migrations/0015_files.sql"),
    },
    Migration {
        version: 16,
        name: "transparency",
        sql: include_str!("../migrations/0016_transparency.sql"),
    },
];

/// The schema version this binary expects.
pub fn expected_schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Any constant works as long as every Parley process uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x5041_524c_4559; // "PARLEY"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database url: {0}")]
    BadUrl(String),
    #[error("cannot create the connection pool: {0}")]
    Pool(String),
    #[error("cannot connect to the database: {}", with_causes(.0))]
    Connect(deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error(
        "the database schema is at version {found}, newer than this binary knows (up to {expected}); \
         run a parley-homeserver release that carries migration {found}, or restore a matching backup"
    )]
    SchemaTooNew { found: i32, expected: i32 },
}

/// An error and its causes: a TLS failure says why only in its source (an unknown
/// issuer, a name the certificate lacks).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connections opened before this instant are not handed out again (see
/// `discard_idle_connections`). One per process, like the pool it serves.
static DISCARD_BEFORE: Mutex<Option<Instant>> = Mutex::new(None);

/// Drops, at their next checkout, the idle connections opened until now: one of them was
/// found on a server that no longer takes writes, and so may the others be.
pub fn discard_idle_connections() {
    let mut before = DISCARD_BEFORE.lock().unwrap_or_else(|p| p.into_inner());
    *before = Some(Instant::now());
}

fn opened_before_discard(created: Instant) -> bool {
    let before = DISCARD_BEFORE.lock().unwrap_or_else(|p| p.into_inner());
    before.is_some_and(|at| created <= at)
}

/// Whether a query failed because the database server cannot serve this connection (it
/// went away, is shutting down or restarting, or is a read-only standby), not because of
/// the query: the answer is `503 database_unavailable`, and a retry may succeed.
pub fn is_unavailable(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let Some(code) = err.code() else {
        // No SQLSTATE: an I/O error on the connection, or a server that did not answer.
        return err.as_db_error().is_none();
    };
    let code = code.code();
    if code == "25006" {
        // read_only_sql_transaction: this connection is on a standby.
        discard_idle_connections();
        return true;
    }
    // Class 08: connection exception; 57P01-57P03: admin or crash shutdown, cannot
    // connect now (a failover stops or restarts the server).
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

pub fn create_pool(config: &DatabaseConfig) -> Result<Pool, DbError> {
    let (mut pg, tls) = pg_tls::connection_config(&config.url).map_err(DbError::BadUrl)?;
    if pg.get_application_name().is_none() {
        // Tells an operator (and tests) which process a backend in pg_stat_activity serves.
        pg.application_name(format!("parley-homeserver/{}", std::process::id()));
    }
    let manager = deadpool_postgres::Manager::from_config(
        pg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let timeout = Some(Duration::from_millis(config.pool_timeout_ms));
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .pre_recycle(deadpool_postgres::Hook::sync_fn(|_, metrics| {
            if opened_before_discard(metrics.created) {
                Err(HookError::message("opened before a failover was noticed"))
            } else {
                Ok(())
            }
        }))
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// Applies every migration the database lacks. Refuses a database whose schema is
/// newer than this binary: running old code on it could corrupt data.
pub async fn migrate(pool: &Pool) -> Result<i32, DbError> {
    let mut client = pool.get().await.map_err(DbError::Connect)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current = current_version(&tx).await?;
    let expected = expected_schema_version();
    if current > expected {
        return Err(DbError::SchemaTooNew {
            found: current,
            expected,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tracing::info!(version = migration.version, name = migration.name, "applying migration");
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(expected)
}

/// What `/ready` reports: the schema version, and whether the server the pool reaches
/// takes writes. Bounded by `wait` however the database behaves.
pub async fn readiness(pool: &Pool, wait: Duration) -> Result<(i32, bool), DbError> {
    let timeouts = deadpool_postgres::Timeouts {
        wait: Some(wait),
        create: Some(wait),
        recycle: Some(wait),
    };
    let check = async {
        let client = pool.timeout_get(&timeouts).await.map_err(DbError::Connect)?;
        // Off on a primary; on on a standby (in recovery) or a read-only database.
        let writable: bool = client
            .query_one("SELECT current_setting('transaction_read_only') = 'off'", &[])
            .await?
            .get(0);
        if !writable {
            discard_idle_connections();
        }
        Ok::<_, DbError>((schema_version_on(&client).await?, writable))
    };
    tokio::time::timeout(wait, check)
        .await
        .unwrap_or_else(|_| Err(DbError::Pool(format!("no answer from the database within {wait:?}"))))
}

/// The latest applied migration, or 0 on an empty database.
pub async fn schema_version(pool: &Pool) -> Result<i32, DbError> {
    let client = pool.get().await.map_err(DbError::Connect)?;
    schema_version_on(&client).await
}

async fn schema_version_on(client: &deadpool_postgres::Client) -> Result<i32, DbError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(current_version(client).await?)
}

async fn current_version(client: &impl deadpool_postgres::GenericClient) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT COALESCE(max(version), 0) FROM schema_migrations", &[])
        .await?;
    Ok(row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        // 0012 is another branch's (the second factor); this branch's key backup is 0013.
        // Once both are merged the numbers are consecutive again.
        let mut previous = 0;
        for m in MIGRATIONS {
            assert!(m.version > previous, "{} is out of order", m.name);
            assert!(m.version <= previous + 2, "{} leaves a gap", m.name);
            previous = m.version;
        }
    }
}
