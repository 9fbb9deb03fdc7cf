//! Outbound federation queues and the allow/deny policy, as the operator manages them.

use actix_web::web;
use parley_specs::admin_api::{Destination, DestinationList, PolicyLists, PolicyView};
use parley_specs::{ErrorCode, ServerName};

use super::AdminState;
use crate::error::ApiError;
use crate::remote::policy::Lists;
use crate::store::{self, federation::QueueStats};

fn destination(state: &AdminState, stats: QueueStats) -> Destination {
    let allowed = ServerName::parse(&stats.destination).is_ok_and(|server| state.policy.permits(&server));
    Destination {
        server: stats.destination,
        queue_depth: stats.depth,
        oldest_queued_age_secs: (stats.depth > 0).then_some(stats.oldest_age_secs),
        failures: stats.failures,
        backing_off: stats.backing_off,
        next_attempt_at: stats.next_attempt_at,
        last_error: stats.last_error,
        allowed,
    }
}

pub async fn destinations(state: web::Data<AdminState>) -> Result<web::Json<DestinationList>, ApiError> {
    let stats = store::federation::queue_stats(&state.app.pool.get().await?).await?;
    let destinations = stats.into_iter().map(|s| destination(&state, s)).collect();
    Ok(web::Json(DestinationList { destinations }))
}

/// Ends the destination's backoff: this process sends to it now, the others find it due
/// at their next poll (each second), and the first to claim it sends.
pub async fn retry(state: web::Data<AdminState>, path: web::Path<String>) -> Result<web::Json<Destination>, ApiError> {
    let server = ServerName::parse(&path).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))?;
    let db = state.app.pool.get().await?;
    if !store::federation::retry_now(&db, server.as_str()).await? {
        return Err(ApiError::not_found(&format!(
            "destination {server} (nothing was ever queued for it)"
        )));
    }
    // Read before the sender is woken: its next attempt may fail at once, and the answer
    // is the state the administrator's retry made.
    let stats = store::federation::queue_stats(&db)
        .await?
        .into_iter()
        .find(|s| s.destination == server.as_str())
        .ok_or_else(|| ApiError::not_found(&format!("destination {server}")))?;
    if let Some(remote) = &state.app.remote {
        remote.outbound.kick([server.to_string()]);
    }
    tracing::info!(%server, "federation backoff ended by an administrator");
    Ok(web::Json(destination(&state, stats)))
}

fn view(state: &AdminState) -> PolicyView {
    let (lists, source) = state.policy.effective();
    let lists = lists.to_wire();
    PolicyView {
        allow: lists.allow,
        deny: lists.deny,
        source,
        config_file: state.policy.config_file().to_wire(),
        federation_enabled: state.app.config.federation.is_some(),
    }
}

pub async fn get_policy(state: web::Data<AdminState>) -> Result<web::Json<PolicyView>, ApiError> {
    // From the database, not this process's copy of it (at most a second old).
    state.policy.reload(&state.app.pool.get().await?).await?;
    Ok(web::Json(view(&state)))
}

/// Stores new lists; every process applies them within about two seconds.
pub async fn set_policy(
    state: web::Data<AdminState>,
    body: web::Json<PolicyLists>,
) -> Result<web::Json<PolicyView>, ApiError> {
    let lists = Lists::from_wire(body.into_inner());
    state.policy.store(&state.app.pool.get().await?, Some(lists)).await?;
    Ok(web::Json(view(&state)))
}

/// Forgets the stored lists: the configuration file's apply again.
pub async fn reset_policy(state: web::Data<AdminState>) -> Result<web::Json<PolicyView>, ApiError> {
    state.policy.store(&state.app.pool.get().await?, None).await?;
    Ok(web::Json(view(&state)))
}
