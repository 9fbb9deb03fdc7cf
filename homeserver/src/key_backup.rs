//! The key backup store: each account keeps opaque, versioned chunks here that its
//! devices fill with their end-to-end encrypted backup (`specs/protocol.md`, "Key
//! backup"). This server cannot read them: it checks ids, sizes, versions (optimistic
//! concurrency: a write names the version it replaces) and the account's quota.

use parley_specs::ErrorCode;
use parley_specs::key_backup_api::{ChunkInfo, ChunkList, MAX_CHUNK_ID_CHARS, PutChunkResponse, valid_chunk_id};

use crate::devices::Device;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, key_backup::ChunkRow};

fn info(row: ChunkRow) -> ChunkInfo {
    ChunkInfo {
        chunk_id: row.chunk_id,
        version: row.version,
        size: row.size,
        updated_at: row.updated_at,
    }
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.config.key_backup.enabled {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::NotFound, "this server keeps no key backups"))
    }
}

fn quota(state: &AppState) -> i64 {
    i64::try_from(state.config.key_backup.quota_bytes).unwrap_or(i64::MAX)
}

fn max_chunk(state: &AppState) -> i64 {
    i64::try_from(state.config.key_backup.max_chunk_bytes).unwrap_or(i64::MAX)
}

/// `invalid_param` unless `id` is a chunk id.
pub fn checked_chunk_id(id: &str) -> Result<&str, ApiError> {
    if valid_chunk_id(id) {
        Ok(id)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("a chunk id is 1 to {MAX_CHUNK_ID_CHARS} characters of a-z, 0-9, '.', '_' and '-'"),
        ))
    }
}

/// The most bytes a chunk upload may carry (the handler stops reading past it).
pub fn max_chunk_bytes(state: &AppState) -> usize {
    state.config.key_backup.max_chunk_bytes
}

/// Stores `data` as chunk `chunk_id` of the caller's account if its stored version is
/// `expected_version` (0: not stored yet); it becomes `expected_version + 1`.
pub async fn put_chunk(
    state: &AppState,
    who: &Device,
    chunk_id: &str,
    expected_version: i64,
    data: &[u8],
) -> Result<PutChunkResponse, ApiError> {
    enabled(state)?;
    let chunk_id = checked_chunk_id(chunk_id)?;
    if expected_version < 0 {
        return Err(ApiError::new(ErrorCode::InvalidParam, "expected_version is 0 or more"));
    }
    let size = i64::try_from(data.len()).unwrap_or(i64::MAX);
    if size > max_chunk(state) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a chunk is at most {} bytes", max_chunk(state)),
        ));
    }
    let localpart = who.localpart.as_str();
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let used = store::key_backup::lock_usage(&tx, localpart).await?;
    let (current, old_size) = store::key_backup::version_of(&tx, localpart, chunk_id)
        .await?
        .unwrap_or((0, 0));
    if current != expected_version {
        return Err(ApiError::new(
            ErrorCode::BackupVersionConflict,
            format!("chunk {chunk_id} is at version {current}, not {expected_version}"),
        ));
    }
    let now_used = used - old_size + size;
    if now_used > quota(state) {
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "the key backup would take {now_used} bytes; this account may store {}",
                quota(state)
            ),
        ));
    }
    let row = store::key_backup::upsert(&tx, localpart, chunk_id, expected_version + 1, data).await?;
    store::key_backup::set_usage(&tx, localpart, now_used).await?;
    tx.commit().await?;
    Ok(PutChunkResponse {
        chunk: info(row),
        used_bytes: now_used,
        quota_bytes: quota(state),
    })
}

/// A chunk's version and bytes (`not_found` when the account has no such chunk).
pub async fn get_chunk(state: &AppState, who: &Device, chunk_id: &str) -> Result<(i64, Vec<u8>), ApiError> {
    enabled(state)?;
    let chunk_id = checked_chunk_id(chunk_id)?;
    let db = state.pool.get().await?;
    store::key_backup::get(&db, who.localpart.as_str(), chunk_id)
        .await?
        .ok_or_else(|| ApiError::not_found("backup chunk"))
}

/// Every chunk of the caller's account, with its usage and the limits.
pub async fn list(state: &AppState, who: &Device) -> Result<ChunkList, ApiError> {
    enabled(state)?;
    let db = state.pool.get().await?;
    let localpart = who.localpart.as_str();
    let chunks = store::key_backup::list(&db, localpart).await?;
    let used_bytes = store::key_backup::usage(&db, localpart).await?;
    Ok(ChunkList {
        chunks: chunks.into_iter().map(info).collect(),
        used_bytes,
        quota_bytes: quota(state),
        max_chunk_bytes: max_chunk(state),
    })
}

/// Deletes the caller's whole key backup.
pub async fn delete_all(state: &AppState, who: &Device) -> Result<(), ApiError> {
    enabled(state)?;
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    store::key_backup::lock_usage(&tx, who.localpart.as_str()).await?;
    let deleted = store::key_backup::delete_all(&tx, who.localpart.as_str()).await?;
    tx.commit().await?;
    tracing::info!(user = %who.user_id, chunks = deleted, "key backup deleted");
    Ok(())
}
