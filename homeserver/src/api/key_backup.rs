//! The key backup endpoints: opaque chunks of the caller's account.

use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use parley_specs::ErrorCode;
use parley_specs::key_backup_api::{ChunkList, PutChunkQuery, PutChunkResponse, VERSION_HEADER};

use super::auth::AuthedDevice;
use super::no_content;
use crate::error::ApiError;
use crate::key_backup;
use crate::state::AppState;

pub async fn list(state: web::Data<AppState>, who: AuthedDevice) -> Result<web::Json<ChunkList>, ApiError> {
    Ok(web::Json(key_backup::list(&state, &who).await?))
}

pub async fn put(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    query: web::Query<PutChunkQuery>,
    mut payload: web::Payload,
) -> Result<web::Json<PutChunkResponse>, ApiError> {
    // The chunk limit, not the JSON body limit, applies: read up to it, no further.
    let limit = key_backup::max_chunk_bytes(&state);
    let mut data = Vec::new();
    while let Some(part) = payload.next().await {
        let part = part.map_err(|e| ApiError::new(ErrorCode::BadJson, format!("cannot read the body: {e}")))?;
        if data.len() + part.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a chunk is at most {limit} bytes"),
            ));
        }
        data.extend_from_slice(&part);
    }
    Ok(web::Json(
        key_backup::put_chunk(&state, &who, &path, query.expected_version, &data).await?,
    ))
}

pub async fn get(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (version, data) = key_backup::get_chunk(&state, &who, &path).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")))
        .insert_header((VERSION_HEADER, version.to_string()))
        .body(data))
}

pub async fn delete(state: web::Data<AppState>, who: AuthedDevice) -> Result<HttpResponse, ApiError> {
    key_backup::delete_all(&state, &who).await?;
    Ok(no_content())
}
