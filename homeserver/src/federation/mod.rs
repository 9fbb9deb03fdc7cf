//! The federation API, served to other homeservers on its own port over mutual TLS.

mod auth;
mod delivery;
mod follower;
mod forward;
mod keyring;
mod ordered;
mod outbound;
pub mod policy;
mod receipts;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use parley_federation::client::FederationClient;
use parley_federation::key_document::KeyDocument;
use parley_specs::endpoints::federation as endpoints;
use parley_specs::federation_api::FederationVersion;
use parley_specs::keys_api::{ClaimKeyPackagesRequest, ClaimKeyPackagesResponse};
use parley_specs::{ErrorCode, ServerName, UserId};

pub use auth::{PeerKeys, VerifiedPeer, authenticate, capture_peer_certificate, forget_old_requests_forever, keys_of};
pub use delivery::group_delivery;
pub use follower::Backfills;
pub use forward::forward;
pub use keyring::KeyringFile;
pub use outbound::{OutboundKicks, send_forever};
pub use policy::FederationPolicy;
pub use receipts::relay_receipts;

use crate::api::{Routes, parse_group_id};
use crate::config::FederationConfig;
use crate::error::ApiError;
use crate::key_packages;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;

/// What federation handlers can reach.
pub struct FederationState {
    pub server_name: ServerName,
    pub keys: KeyringFile,
    pub pool: deadpool_postgres::Pool,
    /// Outbound requests, including fetching other servers' key documents.
    pub client: FederationClient,
    pub peer_keys: PeerKeys,
    /// Federation settings (the allow/deny lists in effect are `policy`'s).
    pub config: FederationConfig,
    /// Which servers this one federates with: the configuration file's lists, or those
    /// stored through the admin API.
    pub policy: Arc<FederationPolicy>,
    /// Authenticated requests per origin server.
    pub requests_per_origin: RateLimiter,
    pub metrics: Arc<Metrics>,
    /// Destinations with messages newly queued for them.
    pub outbound: Arc<OutboundKicks>,
    pub backfills: Backfills,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    Routes::default()
        .add(endpoints::SERVER_KEYS, server_keys)
        .add(endpoints::VERSION, version)
        .add(endpoints::CLAIM_KEY_PACKAGES, claim_key_packages)
        .add(endpoints::SUBMIT_COMMIT, forward::forwarded_commit)
        .add(endpoints::SUBMIT_MESSAGE, forward::forwarded_message)
        .add(endpoints::SEND_TRANSACTION, follower::receive_transaction)
        .add(endpoints::BACKFILL, ordered::backfill)
        .add(endpoints::GROUP_DELIVERY, delivery::federated_delivery)
        .add(endpoints::RECEIPTS, receipts::receive_receipts)
        .register(cfg);
}

async fn server_keys(state: web::Data<FederationState>) -> HttpResponse {
    let document = KeyDocument::signed(
        &state.server_name,
        &state.keys.current(),
        now_ms(),
        i64::try_from(state.config.key_document_validity_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
    );
    HttpResponse::Ok().json(document)
}

async fn version(
    state: web::Data<FederationState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<FederationVersion>, ApiError> {
    let peer = authenticate(&req, &body, &state).await?;
    Ok(web::Json(FederationVersion {
        server_name: state.server_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        origin: peer.origin,
    }))
}

/// Another server claims KeyPackages of one of our users for one of its members.
async fn claim_key_packages(
    state: web::Data<FederationState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<ClaimKeyPackagesResponse>, ApiError> {
    let peer = authenticate(&req, &body, &state).await?;
    let request: ClaimKeyPackagesRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("the claim request is not valid: {e}")))?;
    let user = request.user_id;
    if user.server_name() != state.server_name {
        return Err(ApiError::not_found(&format!("user {user} on this server")));
    }
    tracing::debug!(origin = %peer.origin, %user, "key packages claimed over federation");
    Ok(web::Json(key_packages::claim_local(&state.pool, user, None).await?))
}

fn unavailable(why: String) -> ApiError {
    ApiError::new(ErrorCode::RemoteUnavailable, why)
}

/// Sends a signed request to another server and reads its whole answer, whatever its
/// status. Every outbound request goes through here, so none reaches a server this one
/// does not federate with (`server_not_allowed`); a server that cannot be reached or stops
/// answering is `remote_unavailable`.
async fn call(
    state: &FederationState,
    method: reqwest::Method,
    destination: &ServerName,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<(reqwest::StatusCode, web::Bytes), ApiError> {
    if !state.policy.permits(destination) {
        return Err(ApiError::new(
            ErrorCode::ServerNotAllowed,
            format!("this server does not federate with {destination}"),
        ));
    }
    let response = state
        .client
        .send(
            &state.keys.current(),
            method,
            destination,
            path_and_query,
            body,
            now_ms(),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unavailable(format!("{destination} did not finish its answer: {e}")))?;
    Ok((status, bytes))
}

/// Claims KeyPackages of a user of another server from that server.
pub async fn claim_remote(state: &FederationState, user: &UserId) -> Result<ClaimKeyPackagesResponse, ApiError> {
    let destination = user.server_name();
    let body = serde_json::to_vec(&ClaimKeyPackagesRequest { user_id: user.clone() })
        .map_err(|e| ApiError::internal("encoding a claim", e))?;
    let (status, bytes) = call(
        state,
        reqwest::Method::POST,
        &destination,
        endpoints::CLAIM_KEY_PACKAGES.path,
        body,
    )
    .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(&format!("user {user}")));
    }
    if !status.is_success() {
        let answer: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
        return Err(unavailable(format!(
            "{destination} refused the claim ({status}): {answer}"
        )));
    }
    let claimed: ClaimKeyPackagesResponse = serde_json::from_slice(&bytes)
        .map_err(|e| unavailable(format!("{destination} answered the claim with something else: {e}")))?;
    if claimed.user_id != *user {
        return Err(unavailable(format!(
            "{destination} answered for {} instead of {user}",
            claimed.user_id
        )));
    }
    Ok(claimed)
}

pub async fn unrecognized_endpoint() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/federation-api.yaml",
    ))
}
