//! Key transparency for clients: the key-history proof of their own account.

use actix_web::web;
use parley_specs::ErrorCode;
use parley_specs::transparency_api::{HistoryQuery, TransparencyHistory};

use super::auth::AuthedDevice;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /client/v1/transparency/history?since_version=N`: the caller's own account's
/// versions from `N` on, proved against the latest signed root.
pub async fn history(
    state: web::Data<AppState>,
    who: AuthedDevice,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<TransparencyHistory>, ApiError> {
    let Some(transparency) = state.transparency.as_deref() else {
        return Err(ApiError::not_found(
            "a key directory (this server does not federate, or its key transparency is off)",
        ));
    };
    let since_version = u64::try_from(query.since_version)
        .map_err(|_| ApiError::new(ErrorCode::InvalidParam, "since_version must not be negative"))?;
    Ok(web::Json(transparency.history(&who.user_id, since_version).await?))
}
