//! What the database holds: table sizes, the retention backlog, the oldest undelivered
//! entries per other server and in local inboxes.

use actix_web::web;
use parley_specs::admin_api::StorageReport;

use super::AdminState;
use crate::error::ApiError;
use crate::retention;

pub async fn storage(state: web::Data<AdminState>) -> Result<web::Json<StorageReport>, ApiError> {
    Ok(web::Json(retention::storage_report(&state.app).await?))
}
