//! Encrypted files (blobs). A device encrypts a file, uploads the ciphertext to its own
//! server in pieces (a resumable upload: create, `PUT` at the current offset, complete),
//! and sends the blob's id, key and hash inside an MLS message. Members download through
//! their own server, which streams the blob from the blob store when it is the origin,
//! or from the origin over federation (`remote::blobs`), which serves it only to servers
//! with members in the group it was posted in.
//!
//! Bodies are streamed both ways in pieces: no process holds a whole blob. A blob is
//! deleted when its message expires (the upload names the expiry), when its owner
//! deletes it, after `[files] max_age_secs`, and when its upload is abandoned; other
//! servers keep no copy.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use parley_specs::files_api::{CreateUploadRequest, UploadState, is_blob_id};
use parley_specs::groups_api::GroupMember;
use parley_specs::{ErrorCode, GroupId, ServerName};
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blob_store::{BlobReader, BlobStore};
use crate::config::FilesConfig;
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store;
use crate::store::files::BlobRow;

/// Most bytes one `PUT` may carry; a client sends a large file in several.
pub const MAX_PUT_BYTES: u64 = 64 * 1024 * 1024;
/// How long a `PUT` may hold an upload before another may take it over.
const WRITE_LEASE_SECS: f64 = 600.0;
/// Bytes read from the blob store per piece of a download.
const READ_PIECE: usize = 256 * 1024;
/// Blobs deleted per look of the sweeper.
const SWEEP_BATCH: i64 = 100;

/// A blob on its way out: its length and its bytes.
pub struct Download {
    pub size: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, io::Error>>,
}

/// The most ciphertext a file of `max_file_bytes` may have (16 bytes per chunk of at
/// least 16 KiB, and a final chunk).
pub fn max_ciphertext_bytes(max_file_bytes: u64) -> u64 {
    max_file_bytes.saturating_add(max_file_bytes / 1024).saturating_add(64)
}

fn checked_id(blob_id: &str) -> Result<&str, ApiError> {
    if is_blob_id(blob_id) {
        Ok(blob_id)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParam,
            "a blob id is 43 base64url characters",
        ))
    }
}

fn unknown(blob_id: &str) -> ApiError {
    ApiError::new(ErrorCode::UnknownBlob, format!("no blob {blob_id}"))
}

fn state_of(app: &AppState, row: &BlobRow) -> UploadState {
    UploadState {
        blob_id: row.blob_id.clone(),
        server: app.config.server_name.clone(),
        size: u64::try_from(row.size).unwrap_or(0),
        offset: u64::try_from(row.received).unwrap_or(0),
        complete: row.complete,
    }
}

fn io_fault(context: &str, e: io::Error) -> ApiError {
    ApiError::internal(context, e)
}

/// Starts an upload for a file posted in a group `who` is a member of.
pub async fn create_upload(
    app: &AppState,
    who: &GroupMember,
    req: CreateUploadRequest,
) -> Result<UploadState, ApiError> {
    let config = &app.config.files;
    let limit = max_ciphertext_bytes(config.max_file_bytes);
    if req.size > limit {
        return Err(ApiError::new(
            ErrorCode::FileTooLarge,
            format!(
                "this server takes files of up to {} bytes ({limit} bytes of ciphertext)",
                config.max_file_bytes
            ),
        ));
    }
    let size = i64::try_from(req.size).map_err(|_| ApiError::new(ErrorCode::InvalidParam, "size too large"))?;
    let mut db = app.pool.get().await?;
    if !store::groups::is_member(&db, &req.group_id, who).await? {
        return Err(ApiError::new(
            ErrorCode::NotAMember,
            format!("this device is not a member of {}", req.group_id),
        ));
    }
    let tx = db.transaction().await?;
    let used = store::files::lock_owner_usage(&tx, who.user_id.as_str()).await?;
    let quota = i64::try_from(config.user_quota_bytes).unwrap_or(i64::MAX);
    if used.saturating_add(size) > quota {
        return Err(ApiError::new(
            ErrorCode::QuotaExceeded,
            format!(
                "this upload would take the account past its quota of {} bytes ({used} in use)",
                config.user_quota_bytes
            ),
        ));
    }
    let mut id = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    let blob_id = URL_SAFE_NO_PAD.encode(id);
    store::files::insert(&tx, &blob_id, who, req.group_id.as_str(), size, req.expires_at).await?;
    tx.commit().await?;
    Ok(UploadState {
        blob_id,
        server: app.config.server_name.clone(),
        size: req.size,
        offset: 0,
        complete: false,
    })
}

/// Where an upload of `who`'s user stands.
pub async fn upload_state(app: &AppState, who: &GroupMember, blob_id: &str) -> Result<UploadState, ApiError> {
    let blob_id = checked_id(blob_id)?;
    let db = app.pool.get().await?;
    match store::files::get(&db, blob_id).await? {
        Some(row) if row.owner_user == who.user_id.as_str() => Ok(state_of(app, &row)),
        _ => Err(unknown(blob_id)),
    }
}

/// Appends `body` to the upload at `offset` (its current one), streaming it to the blob
/// store. What arrived before a broken connection is kept: the next `PUT` continues
/// after it.
pub async fn append<S, E>(
    app: &AppState,
    who: &GroupMember,
    blob_id: &str,
    offset: u64,
    mut body: S,
) -> Result<UploadState, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let blob_id = checked_id(blob_id)?;
    let offset_i = i64::try_from(offset).map_err(|_| ApiError::new(ErrorCode::InvalidParam, "offset too large"))?;
    let row = {
        let db = app.pool.get().await?;
        match store::files::start_writing(&db, blob_id, who.user_id.as_str(), offset_i, WRITE_LEASE_SECS).await? {
            Some(row) => row,
            None => {
                return Err(match store::files::get(&db, blob_id).await? {
                    Some(row) if row.owner_user == who.user_id.as_str() => ApiError::new(
                        ErrorCode::UploadOffsetMismatch,
                        format!(
                            "the upload is at offset {}{}; continue from there",
                            row.received,
                            if row.complete {
                                " and complete"
                            } else {
                                " (or another request is writing it)"
                            }
                        ),
                    ),
                    _ => unknown(blob_id),
                });
            }
        }
    };
    let size = u64::try_from(row.size).unwrap_or(0);
    let mut written: u64 = 0;
    let outcome: Result<(), ApiError> = async {
        let mut writer = app
            .blobs
            .append_at(blob_id, offset)
            .await
            .map_err(|e| io_fault("opening a blob", e))?;
        let result = loop {
            let Some(piece) = body.next().await else { break Ok(()) };
            let piece = match piece {
                Ok(piece) => piece,
                Err(e) => {
                    break Err(ApiError::new(
                        ErrorCode::BadJson,
                        format!("the upload's body broke off: {e}"),
                    ));
                }
            };
            let len = piece.len() as u64;
            if offset + written + len > size {
                break Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the upload is {size} bytes; this body goes past its end"),
                ));
            }
            if written + len > MAX_PUT_BYTES {
                break Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("one PUT carries at most {MAX_PUT_BYTES} bytes"),
                ));
            }
            if let Err(e) = writer.write_all(&piece).await {
                break Err(io_fault("writing a blob", e));
            }
            written += len;
        };
        writer.flush().await.map_err(|e| io_fault("writing a blob", e))?;
        drop(writer);
        app.blobs
            .sync(blob_id)
            .await
            .map_err(|e| io_fault("syncing a blob", e))?;
        result
    }
    .await;
    // What reached the disk counts, whatever ended the body.
    let received = offset_i.saturating_add(i64::try_from(written).unwrap_or(0));
    let db = app.pool.get().await?;
    store::files::finish_writing(&db, blob_id, received).await?;
    outcome?;
    Ok(UploadState {
        blob_id: blob_id.to_owned(),
        server: app.config.server_name.clone(),
        size,
        offset: u64::try_from(received).unwrap_or(0),
        complete: false,
    })
}

/// Completes an upload whose every byte arrived.
pub async fn complete(app: &AppState, who: &GroupMember, blob_id: &str) -> Result<UploadState, ApiError> {
    let blob_id = checked_id(blob_id)?;
    let db = app.pool.get().await?;
    let row = store::files::complete(&db, blob_id, who.user_id.as_str())
        .await?
        .ok_or_else(|| unknown(blob_id))?;
    if !row.complete {
        return Err(ApiError::new(
            ErrorCode::UploadOffsetMismatch,
            format!(
                "the upload has {} of its {} bytes; send the rest first",
                row.received, row.size
            ),
        ));
    }
    Ok(state_of(app, &row))
}

/// Deletes a blob of `who`'s user (its message was deleted for everyone).
pub async fn delete(app: &AppState, who: &GroupMember, blob_id: &str) -> Result<(), ApiError> {
    let blob_id = checked_id(blob_id)?;
    let db = app.pool.get().await?;
    match store::files::get(&db, blob_id).await? {
        Some(row) if row.owner_user == who.user_id.as_str() => {
            app.blobs
                .delete(blob_id)
                .await
                .map_err(|e| io_fault("deleting a blob", e))?;
            store::files::delete(&db, blob_id).await?;
            Ok(())
        }
        _ => Err(unknown(blob_id)),
    }
}

/// The blob's bytes from the blob store, in pieces.
fn stream_reader(reader: BlobReader) -> BoxStream<'static, Result<Bytes, io::Error>> {
    futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; READ_PIECE];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

/// A complete blob of this server, from the store.
async fn local_blob(app: &AppState, row: &BlobRow) -> Result<Download, ApiError> {
    let reader = match app.blobs.read(&row.blob_id).await {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(&row.blob_id)),
        Err(e) => return Err(io_fault("reading a blob", e)),
    };
    Ok(Download {
        size: u64::try_from(row.size).ok(),
        body: stream_reader(reader),
    })
}

/// A blob for a device of this server: from the store when this server is its origin
/// (for users with a device in the blob's group), else from the origin.
pub async fn download(app: &AppState, who: &GroupMember, server: &str, blob_id: &str) -> Result<Download, ApiError> {
    let blob_id = checked_id(blob_id)?;
    let origin = ServerName::parse(server).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))?;
    if origin == app.config.server_name {
        let db = app.pool.get().await?;
        let row = match store::files::get(&db, blob_id).await? {
            Some(row) if row.complete => row,
            _ => return Err(unknown(blob_id)),
        };
        let group = GroupId::parse(&row.group_id).map_err(|e| ApiError::internal("a stored group id", e))?;
        if !store::groups::has_user(&db, &group, &who.user_id).await? {
            return Err(ApiError::new(
                ErrorCode::BlobForbidden,
                "this blob is for the members of another group",
            ));
        }
        drop(db);
        return local_blob(app, &row).await;
    }
    let Some(remote) = app.remote.as_ref() else {
        return Err(remote::unavailable(format!(
            "this server does not federate with {origin}"
        )));
    };
    let response = remote::blobs::fetch(remote, &origin, blob_id).await?;
    let size = response.content_length();
    let body = futures_util::stream::unfold(Some(response), |response| async move {
        let mut response = response?;
        match response.chunk().await {
            Ok(Some(piece)) => Some((Ok(piece), Some(response))),
            Ok(None) => None,
            Err(e) => Some((Err(io::Error::other(e)), None)),
        }
    })
    .boxed();
    Ok(Download { size, body })
}

/// A blob of this server for another one, which must have members in the blob's group.
pub async fn serve_to_server(app: &AppState, origin: &ServerName, blob_id: &str) -> Result<Download, ApiError> {
    let blob_id = checked_id(blob_id)?;
    let db = app.pool.get().await?;
    let row = match store::files::get(&db, blob_id).await? {
        Some(row) if row.complete => row,
        _ => return Err(unknown(blob_id)),
    };
    let group = GroupId::parse(&row.group_id).map_err(|e| ApiError::internal("a stored group id", e))?;
    if !store::groups::has_members_of(&db, &group, origin.as_str()).await? {
        tracing::info!(%origin, "a blob was refused to a server with no members in its group");
        return Err(ApiError::new(
            ErrorCode::BlobForbidden,
            "this blob is served only to servers with members in its group",
        ));
    }
    drop(db);
    tracing::debug!(%origin, "a blob fetched over federation");
    local_blob(app, &row).await
}

/// Deletes, every `sweep_interval_secs` until the process ends, the blobs whose message
/// expired, those older than `max_age_secs` and abandoned uploads: bytes first, then the
/// row (a crash between the two leaves a row whose bytes are gone, deleted next time).
pub async fn sweep_forever(pool: deadpool_postgres::Pool, blobs: Arc<dyn BlobStore>, config: FilesConfig) {
    let mut ticker = tokio::time::interval(Duration::from_secs(config.sweep_interval_secs.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep_once(&pool, blobs.as_ref(), &config).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted expired, old and abandoned blobs"),
            Err(error) => tracing::warn!(%error, "blob sweep failed; retrying later"),
        }
    }
}

/// One pass of the blob sweeper; returns how many blobs it deleted.
pub async fn sweep_once(
    pool: &deadpool_postgres::Pool,
    blobs: &dyn BlobStore,
    config: &FilesConfig,
) -> Result<u64, String> {
    let mut deleted = 0;
    loop {
        let db = pool.get().await.map_err(|e| e.to_string())?;
        let due = store::files::due_for_deletion(
            &db,
            config.max_age_secs as f64,
            config.incomplete_upload_max_age_secs as f64,
            SWEEP_BATCH,
        )
        .await
        .map_err(|e| e.to_string())?;
        for blob_id in &due {
            blobs.delete(blob_id).await.map_err(|e| e.to_string())?;
            store::files::delete(&db, blob_id).await.map_err(|e| e.to_string())?;
            deleted += 1;
        }
        if (due.len() as i64) < SWEEP_BATCH {
            return Ok(deleted);
        }
    }
}
