//! Submits to groups hubbed elsewhere. A client always talks to its own homeserver; for a
//! group hubbed on another server, that homeserver forwards the commit or message to the
//! hub and returns the hub's answer, refusals included (`409 wrong_epoch` with the current
//! epoch, so the client catches up exactly as with a local hub). The hub accepts a
//! forwarded submit only for a user of the server that forwards it.

use actix_web::{HttpRequest, web};
use parley_specs::endpoints::Endpoint;
use parley_specs::federation_api::{ForwardedCommit, ForwardedMessage};
use parley_specs::groups_api::{Accepted, GroupMember};
use parley_specs::{ErrorBody, ErrorCode, GroupId};

use super::{FederationState, authenticate, call, parse_group_id, unavailable};
use crate::error::ApiError;
use crate::hub;
use crate::state::AppState;

/// Forwards a submit (`SUBMIT_COMMIT` or `SUBMIT_MESSAGE` with its body) to the group's
/// hub and returns the hub's answer as the client should see it.
pub async fn forward(
    state: &FederationState,
    group: &GroupId,
    endpoint: Endpoint,
    body: &impl serde::Serialize,
) -> Result<Accepted, ApiError> {
    let hub = group.hub();
    let path = endpoint.path_with(&[group.as_str()]);
    let body = serde_json::to_vec(body).map_err(|e| ApiError::internal("encoding a forwarded submit", e))?;
    let (status, bytes) = call(state, reqwest::Method::POST, &hub, &path, body).await?;
    if status.is_success() {
        let accepted: Accepted = serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("{hub} answered the submit with something else: {e}")))?;
        if accepted.group_id != *group {
            return Err(unavailable(format!("{hub} answered for another group")));
        }
        return Ok(accepted);
    }
    let Ok(refusal) = serde_json::from_slice::<ErrorBody>(&bytes) else {
        return Err(unavailable(format!("{hub} answered {status} without an error body")));
    };
    // The hub's own faults are not the client's: to the client the hub is unavailable.
    let code = match refusal.error {
        ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::Unknown => ErrorCode::RemoteUnavailable,
        code => code,
    };
    Err(ApiError {
        code,
        message: format!("the group's hub {hub} refused it: {}", refusal.message),
        retry_after: refusal.retry_after_ms.map(std::time::Duration::from_millis),
        current_epoch: refusal.current_epoch,
    })
}

/// A forwarded submit's body, once it is known to come from the sender's own server for a
/// group hubbed here.
async fn accept_forwarded<T: serde::de::DeserializeOwned>(
    state: &FederationState,
    req: &HttpRequest,
    path: &str,
    body: &[u8],
    sender_of: impl Fn(&T) -> &GroupMember,
) -> Result<(GroupId, T), ApiError> {
    let peer = authenticate(req, body, state).await?;
    let group = parse_group_id(path)?;
    let forwarded: T = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("the submit is not valid: {e}")))?;
    if group.hub() != state.server_name {
        return Err(ApiError::new(
            ErrorCode::NotHubbedHere,
            format!("{group} is hubbed on {}, not here", group.hub()),
        ));
    }
    let sender = sender_of(&forwarded);
    if sender.user_id.server_name() != peer.origin {
        return Err(ApiError::new(
            ErrorCode::SenderNotOfOrigin,
            format!(
                "{} may submit for its own users only, not for {}",
                peer.origin, sender.user_id
            ),
        ));
    }
    Ok((group, forwarded))
}

pub async fn forwarded_commit(
    state: web::Data<FederationState>,
    app: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<Accepted>, ApiError> {
    let (group, forwarded) = accept_forwarded(&state, &req, &path, &body, |f: &ForwardedCommit| &f.sender).await?;
    Ok(web::Json(
        hub::submit_commit(&app, &forwarded.sender, group, forwarded.commit).await?,
    ))
}

pub async fn forwarded_message(
    state: web::Data<FederationState>,
    app: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<Accepted>, ApiError> {
    let (group, forwarded) = accept_forwarded(&state, &req, &path, &body, |f: &ForwardedMessage| &f.sender).await?;
    Ok(web::Json(
        hub::submit_message(&app, &forwarded.sender, group, forwarded.message).await?,
    ))
}
