//! SQL of the key backup: each account's opaque chunks and the bytes they take.

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::Db;

pub struct ChunkRow {
    pub chunk_id: String,
    pub version: i64,
    pub size: i64,
    pub updated_at: OffsetDateTime,
}

impl From<&Row> for ChunkRow {
    fn from(row: &Row) -> Self {
        Self {
            chunk_id: row.get("chunk_id"),
            version: row.get("version"),
            size: row.get("size"),
            updated_at: row.get("updated_at"),
        }
    }
}

/// The account's usage row, locked until the transaction ends (created at 0 if missing):
/// writes of one account's chunks take turns on it.
pub async fn lock_usage(db: &impl Db, localpart: &str) -> Result<i64, tokio_postgres::Error> {
    let insert = db
        .prepare_cached("INSERT INTO key_backup_usage (localpart) VALUES ($1) ON CONFLICT (localpart) DO NOTHING")
        .await?;
    db.execute(&insert, &[&localpart]).await?;
    let select = db
        .prepare_cached("SELECT used_bytes FROM key_backup_usage WHERE localpart = $1 FOR UPDATE")
        .await?;
    Ok(db.query_one(&select, &[&localpart]).await?.get(0))
}

/// The account's bytes in use (0 without a backup).
pub async fn usage(db: &impl Db, localpart: &str) -> Result<i64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT used_bytes FROM key_backup_usage WHERE localpart = $1")
        .await?;
    Ok(db.query_opt(&stmt, &[&localpart]).await?.map_or(0, |r| r.get(0)))
}

pub async fn set_usage(db: &impl Db, localpart: &str, used: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE key_backup_usage SET used_bytes = $2 WHERE localpart = $1")
        .await?;
    db.execute(&stmt, &[&localpart, &used]).await?;
    Ok(())
}

/// The stored version and size of a chunk, if it exists.
pub async fn version_of(
    db: &impl Db,
    localpart: &str,
    chunk_id: &str,
) -> Result<Option<(i64, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT version, size FROM key_backup_chunks WHERE localpart = $1 AND chunk_id = $2")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart, &chunk_id])
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// Writes a chunk at `version` (inserting or replacing it).
pub async fn upsert(
    db: &impl Db,
    localpart: &str,
    chunk_id: &str,
    version: i64,
    data: &[u8],
) -> Result<ChunkRow, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO key_backup_chunks (localpart, chunk_id, version, data, size)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (localpart, chunk_id)
             DO UPDATE SET version = $3, data = $4, size = $5, updated_at = now()
             RETURNING chunk_id, version, size, updated_at",
        )
        .await?;
    let size = i64::try_from(data.len()).unwrap_or(i64::MAX);
    let row = db
        .query_one(&stmt, &[&localpart, &chunk_id, &version, &data, &size])
        .await?;
    Ok(ChunkRow::from(&row))
}

/// A chunk's bytes and version.
pub async fn get(
    db: &impl Db,
    localpart: &str,
    chunk_id: &str,
) -> Result<Option<(i64, Vec<u8>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT version, data FROM key_backup_chunks WHERE localpart = $1 AND chunk_id = $2")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart, &chunk_id])
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// Every chunk of the account, by id.
pub async fn list(db: &impl Db, localpart: &str) -> Result<Vec<ChunkRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT chunk_id, version, size, updated_at FROM key_backup_chunks
             WHERE localpart = $1 ORDER BY chunk_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localpart])
        .await?
        .iter()
        .map(ChunkRow::from)
        .collect())
}

/// Deletes every chunk of the account and its usage row.
pub async fn delete_all(db: &impl Db, localpart: &str) -> Result<u64, tokio_postgres::Error> {
    let chunks = db
        .prepare_cached("DELETE FROM key_backup_chunks WHERE localpart = $1")
        .await?;
    let deleted = db.execute(&chunks, &[&localpart]).await?;
    let usage = db
        .prepare_cached("DELETE FROM key_backup_usage WHERE localpart = $1")
        .await?;
    db.execute(&usage, &[&localpart]).await?;
    Ok(deleted)
}
