//! The federation API, served to other homeservers on its own port over mutual TLS.
//!
//! Handlers receive a `Signed<T>` (an authenticated origin and a typed body) and call the
//! domain; what this server sends to others lives in `remote/`.

mod signed;

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use parley_federation::key_document::KeyDocument;
use parley_specs::endpoints::federation as endpoints;
use parley_specs::federation_api::{
    BackfillPage, BackfillQuery, FederatedGroupDelivery, FederationVersion, ForwardedCommit, ForwardedLeave,
    ForwardedMessage, GroupInfoRequest, ReceiptsRequest, ReceiptsResult, Transaction, TransactionResult,
};
use parley_specs::groups_api::{Accepted, GroupInfoResponse, LeftGroup};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, ClaimKeyPackagesResponse, SignedDeviceKeys};
use parley_specs::transparency_api::{AuditQuery, TransparencyAudit};
use parley_specs::{ErrorCode, GroupId};

pub use signed::{BodyLimits, NoBody, Signed, capture_peer_certificate, forget_old_requests_forever};

use crate::error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::remote::{Remote, now_ms};
use crate::routes::{Routes, parse_group_id, parse_user_id};
use crate::state::AppState;
use crate::{devices, files, follower, hub, inbox, key_packages};

/// What the federation API reaches besides `AppState`.
pub struct FederationApi {
    pub remote: Arc<Remote>,
    /// Authenticated requests per origin server.
    pub requests_per_origin: RateLimiter,
    pub body_limits: BodyLimits,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    Routes::default()
        .add(endpoints::SERVER_KEYS, server_keys)
        .add(endpoints::VERSION, version)
        .add(endpoints::CLAIM_KEY_PACKAGES, claim_key_packages)
        .add(endpoints::USER_DEVICES, user_devices)
        .add(endpoints::TRANSPARENCY_AUDIT, transparency_audit)
        .add(endpoints::SUBMIT_COMMIT, forwarded_commit)
        .add(endpoints::LEAVE_GROUP, forwarded_leave)
        .add(endpoints::SUBMIT_MESSAGE, forwarded_message)
        .add(endpoints::SEND_TRANSACTION, receive_transaction)
        .add(endpoints::BACKFILL, backfill)
        .add(endpoints::GROUP_DELIVERY, group_delivery)
        .add(endpoints::RECEIPTS, receive_receipts)
        .add(endpoints::GROUP_INFO, group_info)
        .add(endpoints::KEYS_CHANGED, keys_changed)
        .add(endpoints::FETCH_BLOB, fetch_blob)
        .register(cfg);
}

async fn server_keys(api: web::Data<FederationApi>) -> HttpResponse {
    let remote = &api.remote;
    let validity_ms = remote.config.key_document_validity_secs.saturating_mul(1000);
    let document = KeyDocument::signed(
        &remote.server_name,
        &remote.keys.current(),
        now_ms(),
        i64::try_from(validity_ms).unwrap_or(i64::MAX),
    );
    HttpResponse::Ok().json(document)
}

async fn version(request: Signed<NoBody>, api: web::Data<FederationApi>) -> web::Json<FederationVersion> {
    web::Json(FederationVersion {
        server_name: api.remote.server_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        origin: request.origin,
    })
}

/// Another server rotated its key: its document is fetched again (at most every few
/// seconds), so a key it revoked stops verifying here at once.
async fn keys_changed(request: Signed<NoBody>, api: web::Data<FederationApi>) -> Result<HttpResponse, ApiError> {
    crate::remote::peer_keys::refresh(&api.remote, &request.origin).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Another server claims KeyPackages of one of our users for one of its members.
async fn claim_key_packages(
    request: Signed<ClaimKeyPackagesRequest>,
    app: web::Data<AppState>,
) -> Result<web::Json<ClaimKeyPackagesResponse>, ApiError> {
    let user = request.body.user_id;
    if user.server_name() != app.config.server_name {
        return Err(ApiError::not_found(&format!("user {user} on this server")));
    }
    tracing::debug!(origin = %request.origin, %user, "key packages claimed over federation");
    // A server claims for its users: their one-time packages share its budget.
    let claimer = key_packages::Claimer {
        name: request.origin.as_str(),
        except: None,
    };
    Ok(web::Json(key_packages::claim_local(&app, user, claimer).await?))
}

/// Another server asks which devices (with which keys) one of our users has; answered
/// signed by this server, so it can be checked wherever it is passed on.
async fn user_devices(
    request: Signed<NoBody>,
    app: web::Data<AppState>,
    api: web::Data<FederationApi>,
    path: web::Path<String>,
) -> Result<web::Json<SignedDeviceKeys>, ApiError> {
    let user = parse_user_id(&path)?;
    tracing::debug!(origin = %request.origin, %user, "device keys asked for over federation");
    Ok(web::Json(devices::signed_device_keys(&app, &api.remote, user).await?))
}

/// Another server audits this server's key directory: the signed roots of the epochs it
/// asks for and the append-only proof between them.
async fn transparency_audit(
    request: Signed<NoBody>,
    app: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<web::Json<TransparencyAudit>, ApiError> {
    let Some(transparency) = app.transparency.as_deref() else {
        return Err(ApiError::not_found(
            "a key directory (key transparency is off on this server)",
        ));
    };
    tracing::debug!(origin = %request.origin, from = query.from_epoch, to = query.to_epoch, "audited");
    let epoch = |value: i64, name: &str| {
        u64::try_from(value).map_err(|_| ApiError::new(ErrorCode::InvalidParam, format!("{name} must not be negative")))
    };
    let (from, to) = (
        epoch(query.from_epoch, "from_epoch")?,
        epoch(query.to_epoch, "to_epoch")?,
    );
    Ok(web::Json(transparency.audit_proof(from, to).await?))
}

async fn forwarded_commit(
    request: Signed<ForwardedCommit>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<Accepted>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::submit_forwarded_commit(&app, &request.origin, group, request.body).await?,
    ))
}

async fn forwarded_leave(
    request: Signed<ForwardedLeave>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<LeftGroup>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::leave::leave_forwarded(&app, &request.origin, group, request.body).await?,
    ))
}

async fn forwarded_message(
    request: Signed<ForwardedMessage>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<Accepted>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::submit_forwarded_message(&app, &request.origin, group, request.body).await?,
    ))
}

/// `PUT /federation/v1/transactions/{txn_id}`: a hub sends messages of its groups.
async fn receive_transaction(
    request: Signed<Transaction>,
    app: web::Data<AppState>,
    api: web::Data<FederationApi>,
    txn_id: web::Path<String>,
) -> Result<web::Json<TransactionResult>, ApiError> {
    let app = app.into_inner();
    let result = follower::receive(&app, &api.remote, &request.origin, &request.origin_keys, request.body).await?;
    tracing::debug!(origin = %request.origin, txn = %txn_id, stored = result.stored, duplicates = result.duplicates, "transaction received");
    Ok(web::Json(result))
}

/// A follower that found a gap fetches the group's messages after its last one.
async fn backfill(
    request: Signed<NoBody>,
    api: web::Data<FederationApi>,
    path: web::Path<String>,
    query: web::Query<BackfillQuery>,
) -> Result<web::Json<BackfillPage>, ApiError> {
    let group = parse_group_id(&path)?;
    Ok(web::Json(
        hub::backfill::page(&api.remote, &request.origin, &group, query.after, query.limit).await?,
    ))
}

/// How far each member server has stored a group hubbed here.
async fn group_delivery(
    request: Signed<NoBody>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<FederatedGroupDelivery>, ApiError> {
    let group: GroupId = parse_group_id(&path)?;
    Ok(web::Json(
        hub::delivery::for_server(&app, &request.origin, &group).await?,
    ))
}

/// The GroupInfo and ratchet tree of a group hubbed here, for a device of the origin's
/// user who has a member device in it.
async fn group_info(
    request: Signed<GroupInfoRequest>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<web::Json<GroupInfoResponse>, ApiError> {
    let group: GroupId = parse_group_id(&path)?;
    Ok(web::Json(
        hub::group_info::for_server(&app, &request.origin, group, &request.body.user_id).await?,
    ))
}

/// A blob uploaded here, for a server with members in its group, streamed.
async fn fetch_blob(
    request: Signed<NoBody>,
    app: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let download = files::serve_to_server(&app, &request.origin, &path).await?;
    let mut response = HttpResponse::Ok();
    response.content_type("application/octet-stream");
    if let Some(size) = download.size {
        response.no_chunking(size);
    }
    Ok(response.streaming(download.body))
}

/// Receipts of the origin's devices for messages sent by users of this server.
async fn receive_receipts(
    request: Signed<ReceiptsRequest>,
    app: web::Data<AppState>,
) -> Result<web::Json<ReceiptsResult>, ApiError> {
    Ok(web::Json(
        inbox::receive_remote_receipts(&app, &request.origin, request.body).await?,
    ))
}

pub async fn unrecognized_endpoint() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/federation-api.yaml",
    ))
}
