//! The federation API, served to other homeservers on its own port over mutual TLS.

mod keyring;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use parley_federation::key_document::KeyDocument;
use parley_specs::endpoints::federation as endpoints;
use parley_specs::{ErrorCode, ServerName};

pub use keyring::KeyringFile;

use crate::api::Routes;
use crate::error::ApiError;

/// What federation handlers can reach.
pub struct FederationState {
    pub server_name: ServerName,
    pub keys: KeyringFile,
    pub key_document_validity_ms: i64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    Routes::default().add(endpoints::SERVER_KEYS, server_keys).register(cfg);
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

pub async fn unrecognized_endpoint() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/federation-api.yaml",
    ))
}
