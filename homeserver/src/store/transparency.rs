//! Key transparency's SQL: the storage of the `akd` directory (its Database trait, over
//! this server's PostgreSQL), the users waiting for the next epoch, this server's signed
//! roots, and what auditing other servers recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, StorageType, ValueState, ValueStateKey, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable};
use akd::{AkdLabel, AkdValue};
use deadpool_postgres::Pool;

use super::Db;

/// The `akd` directory's storage in PostgreSQL. Every write of one publication is one
/// transaction; when the publisher handed over the pending changes the epoch consumes
/// (`consume_on_commit`), their rows are deleted in that same transaction, so a change is
/// either published or still pending, whatever crashes when.
/// Clones share the rows to consume, so the publisher keeps one clone and hands the
/// directory another.
#[derive(Clone)]
pub struct DirectoryStore {
    pool: Pool,
    consumed: Arc<Mutex<Vec<(String, i64)>>>,
}

impl DirectoryStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            consumed: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The pending rows (localpart, change_seq) the next publication consumes.
    pub fn consume_on_commit(&self, rows: Vec<(String, i64)>) {
        *self.consumed.lock().unwrap_or_else(|p| p.into_inner()) = rows;
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool
            .get()
            .await
            .map_err(|e| StorageError::Connection(e.to_string()))
    }
}

fn db_error(e: tokio_postgres::Error) -> StorageError {
    StorageError::Other(format!("database: {e}"))
}

fn encode(record: &DbRecord) -> Result<Vec<u8>, StorageError> {
    match record {
        DbRecord::Azks(azks) => postcard::to_stdvec(azks),
        DbRecord::TreeNode(node) => postcard::to_stdvec(node),
        DbRecord::ValueState(state) => postcard::to_stdvec(state),
    }
    .map_err(|e| StorageError::Other(format!("encoding a directory record: {e}")))
}

fn decode(kind: StorageType, bytes: &[u8]) -> Result<DbRecord, StorageError> {
    let bad = |e: postcard::Error| StorageError::Other(format!("a stored directory record is malformed: {e}"));
    Ok(match kind {
        StorageType::Azks => DbRecord::Azks(postcard::from_bytes(bytes).map_err(bad)?),
        StorageType::TreeNode => DbRecord::TreeNode(postcard::from_bytes(bytes).map_err(bad)?),
        StorageType::ValueState => DbRecord::ValueState(postcard::from_bytes(bytes).map_err(bad)?),
    })
}

fn epoch(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The SQL condition and order of a retrieval flag, and its bound.
fn flag_sql(flag: ValueStateRetrievalFlag) -> (&'static str, i64) {
    match flag {
        ValueStateRetrievalFlag::SpecificVersion(v) => ("version = $2::bigint ORDER BY username, epoch DESC", epoch(v)),
        ValueStateRetrievalFlag::SpecificEpoch(e) => ("epoch = $2::bigint ORDER BY username, epoch DESC", epoch(e)),
        ValueStateRetrievalFlag::LeqEpoch(e) => ("epoch <= $2::bigint ORDER BY username, epoch DESC", epoch(e)),
        ValueStateRetrievalFlag::MaxEpoch => ("$2::bigint IS NOT NULL ORDER BY username, epoch DESC", 0),
        ValueStateRetrievalFlag::MinEpoch => ("$2::bigint IS NOT NULL ORDER BY username, epoch ASC", 0),
    }
}

impl DirectoryStore {
    async fn states(
        &self,
        usernames: &[&[u8]],
        flag: ValueStateRetrievalFlag,
    ) -> Result<Vec<ValueState>, StorageError> {
        let db = self.client().await?;
        let (condition, bound) = flag_sql(flag);
        let sql = format!(
            "SELECT DISTINCT ON (username) record FROM transparency_values \
             WHERE username = ANY($1) AND {condition}"
        );
        let stmt = db.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = db.query(&stmt, &[&usernames, &bound]).await.map_err(db_error)?;
        rows.iter()
            .map(|row| match decode(StorageType::ValueState, row.get(0))? {
                DbRecord::ValueState(state) => Ok(state),
                _ => Err(StorageError::Other("not a value state".to_owned())),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Database for DirectoryStore {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(&self, records: Vec<DbRecord>, _state: DbSetState) -> Result<(), StorageError> {
        let mut kinds: Vec<i16> = Vec::new();
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let (mut usernames, mut epochs, mut versions, mut states): (Vec<Vec<u8>>, Vec<i64>, Vec<i64>, Vec<Vec<u8>>) =
            Default::default();
        let mut publishes = false;
        for record in &records {
            match record {
                DbRecord::ValueState(state) => {
                    usernames.push(state.username.0.clone());
                    epochs.push(epoch(state.epoch));
                    versions.push(epoch(state.version));
                    states.push(encode(record)?);
                }
                other => {
                    publishes |= matches!(other, DbRecord::Azks(_));
                    let id = other.get_full_binary_id();
                    kinds.push(i16::from(id[0]));
                    ids.push(id);
                    bodies.push(encode(other)?);
                }
            }
        }
        let consumed = if publishes {
            std::mem::take(&mut *self.consumed.lock().unwrap_or_else(|p| p.into_inner()))
        } else {
            Vec::new()
        };
        let mut db = self.client().await?;
        let tx = db.transaction().await.map_err(db_error)?;
        if !ids.is_empty() {
            tx.execute(
                "INSERT INTO transparency_records (kind, id, record) \
                 SELECT * FROM UNNEST($1::smallint[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (kind, id) DO UPDATE SET record = EXCLUDED.record",
                &[&kinds, &ids, &bodies],
            )
            .await
            .map_err(db_error)?;
        }
        if !usernames.is_empty() {
            tx.execute(
                "INSERT INTO transparency_values (username, epoch, version, record) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::bigint[], $4::bytea[]) \
                 ON CONFLICT (username, epoch) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record",
                &[&usernames, &epochs, &versions, &states],
            )
            .await
            .map_err(db_error)?;
        }
        if !consumed.is_empty() {
            let (localparts, seqs): (Vec<String>, Vec<i64>) = consumed.into_iter().unzip();
            delete_pending(&tx, &localparts, &seqs).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let mut found = self.batch_get::<St>(std::slice::from_ref(id)).await?;
        found
            .pop()
            .ok_or_else(|| StorageError::NotFound(format!("{:?} {id:?}", St::data_type())))
    }

    async fn batch_get<St: Storable>(&self, ids: &[St::StorageKey]) -> Result<Vec<DbRecord>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let binary: Vec<Vec<u8>> = ids.iter().map(St::get_full_binary_key_id).collect();
        if St::data_type() == StorageType::ValueState {
            let db = self.client().await?;
            let mut records = Vec::new();
            for bin in &binary {
                let ValueStateKey(username, at) = ValueState::key_from_full_binary(bin).map_err(StorageError::Other)?;
                let stmt = db
                    .prepare_cached("SELECT record FROM transparency_values WHERE username = $1 AND epoch = $2")
                    .await
                    .map_err(db_error)?;
                if let Some(row) = db.query_opt(&stmt, &[&username, &epoch(at)]).await.map_err(db_error)? {
                    records.push(decode(StorageType::ValueState, row.get(0))?);
                }
            }
            return Ok(records);
        }
        let kind = i16::from(St::data_type() as u8);
        let db = self.client().await?;
        let stmt = db
            .prepare_cached("SELECT record FROM transparency_records WHERE kind = $1 AND id = ANY($2)")
            .await
            .map_err(db_error)?;
        db.query(&stmt, &[&kind, &binary])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| decode(St::data_type(), row.get(0)))
            .collect()
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let db = self.client().await?;
        let stmt = db
            .prepare_cached("SELECT record FROM transparency_values WHERE username = $1 ORDER BY epoch")
            .await
            .map_err(db_error)?;
        let states = db
            .query(&stmt, &[&username.0])
            .await
            .map_err(db_error)?
            .iter()
            .map(|row| match decode(StorageType::ValueState, row.get(0))? {
                DbRecord::ValueState(state) => Ok(state),
                _ => Err(StorageError::Other("not a value state".to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if states.is_empty() {
            return Err(StorageError::NotFound(format!("ValueState {username:?}")));
        }
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        self.states(&[username.0.as_slice()], flag)
            .await?
            .pop()
            .ok_or_else(|| StorageError::NotFound(format!("ValueState {username:?}")))
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        let names: Vec<&[u8]> = usernames.iter().map(|u| u.0.as_slice()).collect();
        Ok(self
            .states(&names, flag)
            .await?
            .into_iter()
            .map(|s| (s.username, (s.version, s.value)))
            .collect())
    }
}

// The users waiting for the next epoch.

/// Up to `limit` users with unpublished changes, oldest change first.
pub async fn pending(db: &impl Db, limit: i64) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT localpart, change_seq FROM transparency_pending ORDER BY change_seq LIMIT $1")
        .await?;
    Ok(db
        .query(&stmt, &[&limit])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub async fn pending_count(db: &impl Db) -> Result<i64, tokio_postgres::Error> {
    let stmt = db.prepare_cached("SELECT count(*) FROM transparency_pending").await?;
    Ok(db.query_one(&stmt, &[]).await?.get(0))
}

/// Deletes the pending rows that were not changed again since they were read.
pub async fn delete_pending(db: &impl Db, localparts: &[String], seqs: &[i64]) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM transparency_pending p USING UNNEST($1::text[], $2::bigint[]) AS done (localpart, change_seq) \
             WHERE p.localpart = done.localpart AND p.change_seq = done.change_seq",
        )
        .await?;
    db.execute(&stmt, &[&localparts, &seqs]).await
}

/// The bound keys of these accounts' devices: (localpart, device_id, key).
pub async fn bound_keys_of(
    db: &impl Db,
    localparts: &[String],
) -> Result<Vec<(String, String, Vec<u8>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT localpart, device_id, mls_signature_key FROM devices \
             WHERE localpart = ANY($1) AND mls_signature_key IS NOT NULL ORDER BY localpart, device_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localparts])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

// This server's signed roots.

/// Stores the signed root of `epoch` unless one is there; returns the one stored.
pub async fn insert_root(
    db: &impl Db,
    epoch: i64,
    signed: &serde_json::Value,
) -> Result<serde_json::Value, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH new AS (INSERT INTO transparency_roots (epoch, signed) VALUES ($1, $2) \
                          ON CONFLICT (epoch) DO NOTHING RETURNING signed) \
             SELECT signed FROM new UNION ALL SELECT signed FROM transparency_roots WHERE epoch = $1 LIMIT 1",
        )
        .await?;
    Ok(db.query_one(&stmt, &[&epoch, signed]).await?.get(0))
}

/// The signed roots of epochs `from..=to`, in order.
pub async fn roots(db: &impl Db, from: i64, to: i64) -> Result<Vec<(i64, serde_json::Value)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT epoch, signed FROM transparency_roots WHERE epoch BETWEEN $1 AND $2 ORDER BY epoch")
        .await?;
    Ok(db
        .query(&stmt, &[&from, &to])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// The signed roots of these epochs (those stored), in epoch order.
pub async fn roots_of(db: &impl Db, epochs: &[i64]) -> Result<Vec<serde_json::Value>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT signed FROM transparency_roots WHERE epoch = ANY($1) ORDER BY epoch")
        .await?;
    Ok(db
        .query(&stmt, &[&epochs])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The latest epoch with a signed root (0 when none).
pub async fn latest_root_epoch(db: &impl Db) -> Result<i64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT COALESCE(max(epoch), 0) FROM transparency_roots")
        .await?;
    Ok(db.query_one(&stmt, &[]).await?.get(0))
}

// Auditing other servers.

/// The signed root of `server` for `epoch` this server recorded while auditing it.
pub async fn peer_root(
    db: &impl Db,
    server: &str,
    epoch: i64,
) -> Result<Option<serde_json::Value>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT signed FROM transparency_peer_roots WHERE server = $1 AND epoch = $2")
        .await?;
    Ok(db.query_opt(&stmt, &[&server, &epoch]).await?.map(|row| row.get(0)))
}

/// The latest audited epoch of `server` with its root.
pub async fn latest_peer_root(
    db: &impl Db,
    server: &str,
) -> Result<Option<(i64, serde_json::Value)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT epoch, signed FROM transparency_peer_roots WHERE server = $1 ORDER BY epoch DESC LIMIT 1",
        )
        .await?;
    Ok(db
        .query_opt(&stmt, &[&server])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Records audited roots of `server` (already checked).
pub async fn insert_peer_roots(
    db: &impl Db,
    server: &str,
    roots: &[(i64, serde_json::Value)],
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO transparency_peer_roots (server, epoch, signed) VALUES ($1, $2, $3) \
             ON CONFLICT (server, epoch) DO NOTHING",
        )
        .await?;
    for (epoch, signed) in roots {
        db.execute(&stmt, &[&server, epoch, signed]).await?;
    }
    Ok(())
}

/// Each audited server's latest audited epoch.
pub async fn audited_servers(db: &impl Db) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT server, max(epoch) FROM transparency_peer_roots GROUP BY server ORDER BY server")
        .await?;
    Ok(db
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// Records a failed audit.
pub async fn insert_failure(
    db: &impl Db,
    server: &str,
    epoch: Option<i64>,
    reason: &str,
    evidence: Option<&serde_json::Value>,
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO transparency_audit_failures (server, epoch, reason, evidence) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    db.execute(&stmt, &[&server, &epoch, &reason, &evidence]).await?;
    Ok(())
}

/// One failed audit, as listed.
pub struct FailureRow {
    pub server: String,
    pub epoch: Option<i64>,
    pub reason: String,
    pub detected_at: time::OffsetDateTime,
}

/// The most recent failed audits, of one server or of all, newest first.
pub async fn failures(
    db: &impl Db,
    server: Option<&str>,
    limit: i64,
) -> Result<Vec<FailureRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT server, epoch, reason, detected_at FROM transparency_audit_failures \
             WHERE $1::text IS NULL OR server = $1 ORDER BY id DESC LIMIT $2",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&server, &limit])
        .await?
        .iter()
        .map(|row| FailureRow {
            server: row.get(0),
            epoch: row.get(1),
            reason: row.get(2),
            detected_at: row.get(3),
        })
        .collect())
}
