use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use parley_specs::ErrorCode;
use parley_specs::client_api::{HealthResponse, ReadyResponse};
use parley_specs::federation_api::WellKnownServer;

use crate::db;
use crate::error::ApiError;
use crate::state::AppState;
use crate::token_file::Bearer;

/// Served when `[federation] well_known_server` is set: how other servers find this
/// server's federation API from its name.
pub async fn well_known_server(state: web::Data<AppState>) -> Result<web::Json<WellKnownServer>, ApiError> {
    let server = state
        .config
        .federation
        .as_ref()
        .and_then(|f| f.well_known_server.clone())
        .ok_or_else(|| ApiError::not_found("a federation delegation for this server"))?;
    Ok(web::Json(WellKnownServer { server }))
}

pub async fn health() -> web::Json<HealthResponse> {
    web::Json(HealthResponse { status: "ok".into() })
}

/// How long `/ready` waits for the database before saying it is not ready.
const READY_WAIT: Duration = Duration::from_secs(2);

/// Ready when the database answers, takes writes (a primary, not a standby or a read-only
/// database) and carries exactly the schema this binary expects. Answers within
/// `READY_WAIT` however the database behaves (e.g. during a failover: not ready).
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let expected = db::expected_schema_version();
    let wait = READY_WAIT.min(Duration::from_millis(state.config.database.pool_timeout_ms.max(1)));
    let checked = db::readiness(&state.pool, wait).await.ok();
    let version = checked.map(|(version, _)| version);
    let writable = checked.is_some_and(|(_, writable)| writable);
    let ready = writable && version == Some(expected);
    let body = ReadyResponse {
        ready,
        database: writable,
        schema_version: version,
        expected_schema_version: expected,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Only for holders of the `[metrics] token_file` token: the figures tell an outsider how
/// busy the server is and who it federates with.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(token) = &state.metrics_token else {
        return ApiError::not_found("/metrics (set [metrics] token_file to serve it)").error_response();
    };
    match token.presented_in(req.headers()) {
        Bearer::Right => {}
        Bearer::Missing | Bearer::Wrong => {
            return ApiError::new(
                ErrorCode::InvalidMetricsToken,
                "send `Authorization: Bearer <the token in [metrics] token_file>`",
            )
            .error_response();
        }
    }
    // The database-wide gauges are refreshed on a timer (`gauges`), never by a scrape.
    state.metrics.observe_pool(state.pool.status());
    match state.metrics.render() {
        Ok(text) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text),
        Err(e) => crate::error::ApiError::internal("rendering metrics", e).error_response(),
    }
}
