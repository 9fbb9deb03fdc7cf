//! Encrypted files: resumable uploads of ciphertext and streamed downloads (`files`).

use actix_web::{HttpResponse, web};
use parley_specs::files_api::{CreateUploadRequest, UploadChunkQuery, UploadState};

use super::auth::AuthedDevice;
use super::no_content;
use crate::error::ApiError;
use crate::files;
use crate::state::AppState;

pub async fn create(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<CreateUploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let upload = files::create_upload(&state, &who.member(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(upload))
}

pub async fn get(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<UploadState>, ApiError> {
    Ok(web::Json(files::upload_state(&state, &who.member(), &path).await?))
}

pub async fn put(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    query: web::Query<UploadChunkQuery>,
    body: web::Payload,
) -> Result<web::Json<UploadState>, ApiError> {
    Ok(web::Json(
        files::append(&state, &who.member(), &path, query.offset, body).await?,
    ))
}

pub async fn complete(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<UploadState>, ApiError> {
    Ok(web::Json(files::complete(&state, &who.member(), &path).await?))
}

pub async fn delete(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    files::delete(&state, &who.member(), &path).await?;
    Ok(no_content())
}

pub async fn download(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (server, blob_id) = path.into_inner();
    let download = files::download(&state, &who.member(), &server, &blob_id).await?;
    Ok(streamed(download))
}

/// A blob as an `application/octet-stream` answer, streamed.
fn streamed(download: files::Download) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response.content_type("application/octet-stream");
    if let Some(size) = download.size {
        response.no_chunking(size);
    }
    response.streaming(download.body)
}
