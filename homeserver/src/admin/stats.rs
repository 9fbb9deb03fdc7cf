//! Server statistics for the operator.

use actix_web::web;
use parley_specs::admin_api::ServerStats;

use super::AdminState;
use crate::error::ApiError;
use crate::store;

pub async fn stats(state: web::Data<AdminState>) -> Result<web::Json<ServerStats>, ApiError> {
    let db = state.app.pool.get().await?;
    Ok(web::Json(
        store::admin::stats(&db, &state.app.config.server_name).await?,
    ))
}
