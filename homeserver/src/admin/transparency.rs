//! Key transparency for the operator: this server's epoch, and its audits of others.

use actix_web::web;
use parley_specs::ServerName;
use parley_specs::transparency_api::{AuditFailure, AuditedServer, TransparencyStatus};
use time::format_description::well_known::Rfc3339;

use super::AdminState;
use crate::error::ApiError;

/// Failed audits listed, at most.
const MAX_FAILURES_LISTED: i64 = 100;

pub async fn status(state: web::Data<AdminState>) -> Result<web::Json<TransparencyStatus>, ApiError> {
    let Some(transparency) = state.app.transparency.as_deref() else {
        return Err(ApiError::not_found(
            "a key directory (this server does not federate, or [transparency] is off)",
        ));
    };
    let (epoch, pending_users) = transparency.status().await?;
    let audited = transparency
        .audited()
        .await?
        .into_iter()
        .filter_map(|(server, epoch)| {
            Some(AuditedServer {
                server: ServerName::parse(&server).ok()?,
                epoch: u64::try_from(epoch).ok()?,
            })
        })
        .collect();
    let failures = transparency
        .failures(MAX_FAILURES_LISTED)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(AuditFailure {
                server: ServerName::parse(&row.server).ok()?,
                epoch: row.epoch.and_then(|e| u64::try_from(e).ok()),
                reason: row.reason,
                detected_at: row.detected_at.format(&Rfc3339).ok()?,
            })
        })
        .collect();
    Ok(web::Json(TransparencyStatus {
        epoch,
        pending_users,
        audited,
        failures,
    }))
}
