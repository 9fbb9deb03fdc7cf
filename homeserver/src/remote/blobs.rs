//! Fetching a blob from the server it was uploaded to (its origin), for a user of this
//! server: the answer's body is streamed on to the user, never held whole.

use std::time::Duration;

use parley_federation::client::read_capped;
use parley_specs::endpoints::federation::FETCH_BLOB;
use parley_specs::{ErrorBody, ErrorCode, ServerName};

use super::{MAX_SMALL_ANSWER_BYTES, Remote, not_sent, now_ms, refused};
use crate::error::ApiError;

/// Time allowed for a whole blob to arrive (100 MiB at under 1 MB/s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Asks `origin` for blob `blob_id`: the answer, when it is a success, with its body
/// unread. `404 unknown_blob` and `403 blob_forbidden` from the origin are passed on
/// as such (they are part of the contract); any other refusal is `remote_unavailable`.
pub async fn fetch(remote: &Remote, origin: &ServerName, blob_id: &str) -> Result<reqwest::Response, ApiError> {
    if !remote.policy.permits(origin) {
        return Err(ApiError::new(
            ErrorCode::ServerNotAllowed,
            format!("this server does not federate with {origin}"),
        ));
    }
    let path = FETCH_BLOB.path_with(&[blob_id]);
    let response = remote
        .client
        .send_within(
            &remote.keys.current(),
            reqwest::Method::GET,
            origin,
            &path,
            Vec::new(),
            now_ms(),
            FETCH_TIMEOUT,
        )
        .await
        .map_err(|e| not_sent(origin, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let answer = read_capped(response, MAX_SMALL_ANSWER_BYTES).await.unwrap_or_default();
    let code = serde_json::from_slice::<ErrorBody>(&answer).map(|b| b.error).ok();
    match code {
        Some(ErrorCode::UnknownBlob) if status.as_u16() == 404 => Err(ApiError::new(
            ErrorCode::UnknownBlob,
            format!("{origin} has no blob {blob_id}"),
        )),
        Some(ErrorCode::BlobForbidden) if status.as_u16() == 403 => Err(ApiError::new(
            ErrorCode::BlobForbidden,
            format!("{origin} serves this blob only to servers with members in its group"),
        )),
        _ => Err(refused(origin, "the blob request", status, &answer)),
    }
}
