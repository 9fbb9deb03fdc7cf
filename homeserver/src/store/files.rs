//! Blobs (encrypted files): what the server knows of each (the bytes are in the blob
//! store).

use parley_specs::groups_api::GroupMember;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::Db;

/// One blob's row.
#[derive(Debug, Clone)]
pub struct BlobRow {
    pub blob_id: String,
    pub owner_user: String,
    pub group_id: String,
    pub size: i64,
    pub received: i64,
    pub complete: bool,
}

fn row(r: &Row) -> BlobRow {
    BlobRow {
        blob_id: r.get(0),
        owner_user: r.get(1),
        group_id: r.get(2),
        size: r.get(3),
        received: r.get(4),
        complete: r.get(5),
    }
}

const COLUMNS: &str = "blob_id, owner_user, group_id, size, received, complete";

/// Bytes of blobs `owner` holds (complete or not). Takes a transaction-scoped lock on
/// the owner first, so two uploads of one user are counted one after the other.
pub async fn lock_owner_usage(db: &impl Db, owner: &str) -> Result<i64, tokio_postgres::Error> {
    db.execute(
        "SELECT pg_advisory_xact_lock(hashtext('parley_blobs:' || $1))",
        &[&owner],
    )
    .await?;
    let stmt = db
        .prepare_cached("SELECT COALESCE(sum(size), 0)::BIGINT FROM blobs WHERE owner_user = $1")
        .await?;
    Ok(db.query_one(&stmt, &[&owner]).await?.get(0))
}

pub async fn insert(
    db: &impl Db,
    blob_id: &str,
    owner: &GroupMember,
    group_id: &str,
    size: i64,
    expires_at: Option<OffsetDateTime>,
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO blobs (blob_id, owner_user, owner_device, group_id, size, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    db.execute(
        &stmt,
        &[
            &blob_id,
            &owner.user_id.as_str(),
            &owner.device_id.as_str(),
            &group_id,
            &size,
            &expires_at,
        ],
    )
    .await
    .map(drop)
}

pub async fn get(db: &impl Db, blob_id: &str) -> Result<Option<BlobRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!("SELECT {COLUMNS} FROM blobs WHERE blob_id = $1"))
        .await?;
    Ok(db.query_opt(&stmt, &[&blob_id]).await?.as_ref().map(row))
}

/// Takes the upload's write lease (for `lease_secs`) when it is at `offset`, incomplete
/// and not being written; None otherwise.
pub async fn start_writing(
    db: &impl Db,
    blob_id: &str,
    owner: &str,
    offset: i64,
    lease_secs: f64,
) -> Result<Option<BlobRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "UPDATE blobs SET writing_until = now() + make_interval(secs => $4::float8) \
             WHERE blob_id = $1 AND owner_user = $2 AND received = $3 AND NOT complete \
               AND (writing_until IS NULL OR writing_until < now()) \
             RETURNING {COLUMNS}"
        ))
        .await?;
    Ok(db
        .query_opt(&stmt, &[&blob_id, &owner, &offset, &lease_secs])
        .await?
        .as_ref()
        .map(row))
}

/// Records how far the upload got and gives back the write lease.
pub async fn finish_writing(db: &impl Db, blob_id: &str, received: i64) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE blobs SET received = $2, writing_until = NULL WHERE blob_id = $1")
        .await?;
    db.execute(&stmt, &[&blob_id, &received]).await.map(drop)
}

/// Marks an upload complete when every byte arrived; returns the row as it is now.
pub async fn complete(db: &impl Db, blob_id: &str, owner: &str) -> Result<Option<BlobRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "UPDATE blobs SET complete = (received = size AND writing_until IS NULL) OR complete \
             WHERE blob_id = $1 AND owner_user = $2 RETURNING {COLUMNS}"
        ))
        .await?;
    Ok(db.query_opt(&stmt, &[&blob_id, &owner]).await?.as_ref().map(row))
}

/// Deletes one blob's row; returns whether there was one.
pub async fn delete(db: &impl Db, blob_id: &str) -> Result<bool, tokio_postgres::Error> {
    let stmt = db.prepare_cached("DELETE FROM blobs WHERE blob_id = $1").await?;
    Ok(db.execute(&stmt, &[&blob_id]).await? > 0)
}

/// Up to `limit` blobs to delete: their message expired, they are older than
/// `max_age_secs` (0: no limit), or their upload was abandoned `incomplete_secs` ago.
pub async fn due_for_deletion(
    db: &impl Db,
    max_age_secs: f64,
    incomplete_secs: f64,
    limit: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT blob_id FROM blobs \
             WHERE expires_at <= now() \
                OR ($1::float8 > 0 AND created_at <= now() - make_interval(secs => $1::float8)) \
                OR (NOT complete AND created_at <= now() - make_interval(secs => $2::float8)) \
             LIMIT $3::int8",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&max_age_secs, &incomplete_secs, &limit])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
