//! Server statistics for the operator.

use actix_web::web;
use parley_specs::admin_api::ServerStats;

use super::AdminState;
use crate::error::ApiError;
use crate::store;

pub async fn stats(state: web::Data<AdminState>) -> Result<web::Json<ServerStats>, ApiError> {
    let counts = store::admin::counts(&state.app.pool.get().await?).await?;
    Ok(web::Json(ServerStats {
        server_name: state.app.config.server_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        users: counts.users,
        deactivated_users: counts.deactivated_users,
        devices: counts.devices,
        groups_hubbed: counts.groups_hubbed,
        groups_followed: counts.groups_followed,
        stored_messages: counts.stored_messages,
        undelivered_inbox_entries: counts.inbox_entries,
        unclaimed_key_packages: counts.unclaimed_key_packages,
        federation_queue: counts.federation_queue,
        federation_destinations: counts.federation_destinations,
        database_size_bytes: counts.database_size_bytes,
        schema_version: counts.schema_version,
    }))
}
