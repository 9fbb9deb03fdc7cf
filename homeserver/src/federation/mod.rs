//! The federation API, served to other homeservers on its own port over mutual TLS.

mod auth;
mod keyring;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use parley_federation::client::FederationClient;
use parley_federation::key_document::KeyDocument;
use parley_specs::endpoints::federation as endpoints;
use parley_specs::federation_api::FederationVersion;
use parley_specs::{ErrorCode, ServerName};

pub use auth::{PeerKeys, VerifiedPeer, authenticate, capture_peer_certificate, forget_old_requests_forever};
pub use keyring::KeyringFile;

use crate::api::Routes;
use crate::config::FederationConfig;
use crate::error::ApiError;

/// What federation handlers can reach.
pub struct FederationState {
    pub server_name: ServerName,
    pub keys: KeyringFile,
    pub key_document_validity_ms: i64,
    pub pool: deadpool_postgres::Pool,
    /// Outbound requests, including fetching other servers' key documents.
    pub client: FederationClient,
    pub peer_keys: PeerKeys,
    /// Which servers this one federates with.
    pub config: FederationConfig,
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
        .register(cfg);
}

async fn server_keys(state: web::Data<FederationState>) -> HttpResponse {
    let document = KeyDocument::signed(
        &state.server_name,
        &state.keys.current(),
        now_ms(),
        state.key_document_validity_ms,
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

pub async fn unrecognized_endpoint() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/federation-api.yaml",
    ))
}
