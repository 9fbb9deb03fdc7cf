//! The operator's admin API (`/admin/v1`): its own listener (`[admin] listen`, loopback
//! by default), never the client or federation one. Every request, whatever its path,
//! needs `Authorization: Bearer <admin token>`; the token is compared by its SHA-256 in
//! constant time. `parley-homeserver admin ...` (`cli`) is its client.

pub mod cli;
mod federation;
mod stats;
mod storage;
mod transparency;
pub use crate::token_file as token;
mod users;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use parley_specs::ErrorCode;
use parley_specs::endpoints::admin as endpoints;

use crate::config::{AdminConfig, Config};
use crate::error::ApiError;
use crate::remote::FederationPolicy;
use crate::routes::{self, Routes};
use crate::state::AppState;
use crate::tls;
use crate::token_file::{Bearer, TokenHash};

/// Largest admin request body (a password, or the policy lists).
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What admin handlers can reach.
pub struct AdminState {
    pub app: web::Data<AppState>,
    pub policy: Arc<FederationPolicy>,
    token: TokenHash,
}

impl AdminState {
    /// Reads the token file (refusing one others may read); keeps only the token's hash.
    pub fn new(app: web::Data<AppState>, admin: &AdminConfig, policy: Arc<FederationPolicy>) -> anyhow::Result<Self> {
        Ok(Self {
            app,
            policy,
            token: TokenHash::load(&admin.token_file)?,
        })
    }

    fn check(&self, req: &ServiceRequest) -> Result<(), ApiError> {
        let refused = |why: &str| {
            ApiError::new(
                ErrorCode::InvalidAdminToken,
                format!("{why}: send `Authorization: Bearer <the token in [admin] token_file>`"),
            )
        };
        match self.token.presented_in(req.headers()) {
            Bearer::Right => Ok(()),
            Bearer::Missing => Err(refused("no admin token")),
            Bearer::Wrong => Err(refused("wrong admin token")),
        }
    }
}

/// Every request passes here first: without the admin token nothing is routed, not even
/// to a 404.
async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let checked = match req.app_data::<web::Data<AdminState>>() {
        Some(state) => state.check(&req),
        None => Err(ApiError::internal("admin authentication", "AdminState missing")),
    };
    match checked {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(error) => {
            tracing::warn!(path = %req.path(), peer = ?req.peer_addr(), "admin request refused: {}", error.message);
            Ok(req.into_response(error.error_response()).map_into_right_body())
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    Routes::default()
        .add(endpoints::LIST_USERS, users::list)
        .add(endpoints::GET_USER, users::get)
        .add(endpoints::DEACTIVATE_USER, users::deactivate)
        .add(endpoints::REACTIVATE_USER, users::reactivate)
        .add(endpoints::RESET_PASSWORD, users::reset_password)
        .add(endpoints::LIST_DEVICES, users::devices)
        .add(endpoints::RESET_SECOND_FACTOR, users::reset_second_factor)
        .add(endpoints::REVOKE_DEVICE, users::revoke_device)
        .add(endpoints::LIST_DESTINATIONS, federation::destinations)
        .add(endpoints::RETRY_DESTINATION, federation::retry)
        .add(endpoints::GET_POLICY, federation::get_policy)
        .add(endpoints::SET_POLICY, federation::set_policy)
        .add(endpoints::RESET_POLICY, federation::reset_policy)
        .add(endpoints::STATS, stats::stats)
        .add(endpoints::STORAGE, storage::storage)
        .add(endpoints::TRANSPARENCY_STATUS, transparency::status)
        .register(cfg);
}

async fn unrecognized_endpoint() -> HttpResponse {
    ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/admin-api.yaml",
    )
    .error_response()
}

/// Whether the admin API on `listen` speaks plain HTTP (loopback) or HTTPS (otherwise).
pub fn plain_http(listen: SocketAddr) -> bool {
    listen.ip().is_loopback()
}

/// The admin API's own server: plain HTTP on a loopback address, HTTPS with the `[tls]`
/// certificate on any other. One worker: it serves an operator, not traffic.
pub fn server(
    config: &Config,
    admin: &AdminConfig,
    state: web::Data<AdminState>,
    app_state: web::Data<AppState>,
) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(admin.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin): {e}", admin.listen))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(app_state.clone())
            .app_data(routes::json_config(MAX_BODY_BYTES))
            .app_data(routes::path_config())
            .app_data(routes::query_config())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .wrap(from_fn(require_token))
            .wrap(from_fn(routes::observe))
            .configure(configure)
            .default_service(web::to(unrecognized_endpoint))
    })
    .workers(1)
    .shutdown_timeout(5);
    let server = if plain_http(addr) {
        tracing::info!(%addr, "admin API listening (HTTP, loopback only)");
        server.listen(listener)?.run()
    } else {
        tracing::info!(%addr, "admin API listening (HTTPS)");
        let tls_config = tls::server_config(&config.tls.cert, &config.tls.key)?;
        server.listen_rustls_0_23(listener, tls_config)?.run()
    };
    Ok((addr, server))
}
