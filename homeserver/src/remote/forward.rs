//! Submits to groups hubbed elsewhere. A client always talks to its own homeserver; for a
//! group hubbed on another server, that homeserver forwards the commit or message to the
//! hub and returns the hub's answer, refusals included (`409 wrong_epoch` with the current
//! epoch, so the client catches up exactly as with a local hub).

use parley_specs::endpoints::Endpoint;
use parley_specs::groups_api::Accepted;
use parley_specs::{ErrorBody, ErrorCode, GroupId};

use super::{MAX_SMALL_ANSWER_BYTES, Remote, unavailable};
use crate::error::ApiError;

/// Forwards a submit (`SUBMIT_COMMIT` or `SUBMIT_MESSAGE` with its body) to the group's
/// hub and returns the hub's answer as the client should see it.
pub async fn forward(
    remote: &Remote,
    group: &GroupId,
    endpoint: Endpoint,
    body: &impl serde::Serialize,
) -> Result<Accepted, ApiError> {
    let accepted: Accepted = forward_for(remote, group, endpoint, body).await?;
    if accepted.group_id != *group {
        return Err(unavailable(format!("{} answered for another group", group.hub())));
    }
    Ok(accepted)
}

/// Forwards a request about a group hubbed elsewhere (`endpoint` with its body) to the
/// group's hub and returns its answer, `T`, or its refusal as the client should see it.
pub async fn forward_for<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    group: &GroupId,
    endpoint: Endpoint,
    body: &impl serde::Serialize,
) -> Result<T, ApiError> {
    let hub = group.hub();
    let path = endpoint.path_with(&[group.as_str()]);
    let body = serde_json::to_vec(body).map_err(|e| ApiError::internal("encoding a forwarded submit", e))?;
    let (status, bytes) = remote
        .call(reqwest::Method::POST, &hub, &path, body, MAX_SMALL_ANSWER_BYTES)
        .await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("{hub} answered the request with something else: {e}")));
    }
    let Ok(refusal) = serde_json::from_slice::<ErrorBody>(&bytes) else {
        return Err(unavailable(format!("{hub} answered {status} without an error body")));
    };
    // The hub's own faults are not the client's: to the client the hub is unavailable.
    let code = match refusal.error {
        ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::DatabaseUnavailable | ErrorCode::Unknown => {
            ErrorCode::RemoteUnavailable
        }
        code => code,
    };
    Err(ApiError {
        code,
        message: format!("the group's hub {hub} refused it: {}", refusal.message),
        retry_after: refusal.retry_after_ms.map(std::time::Duration::from_millis),
        current_epoch: refusal.current_epoch,
    })
}
