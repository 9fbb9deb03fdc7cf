//! Accounts and their devices, as the operator manages them.

use actix_web::{HttpResponse, web};
use parley_specs::admin_api::{
    AdminDevice, AdminDeviceList, AdminUser, DEFAULT_USERS_PER_PAGE, DeactivateResponse, MAX_USERS_PER_PAGE,
    ResetPasswordRequest, ResetPasswordResponse, ResetSecondFactorResponse, UserList, UserQuery,
};
use parley_specs::{DeviceId, ErrorCode, Localpart, UserId};

use super::AdminState;
use crate::accounts::check_password_rules;
use crate::credentials::hash_password;
use crate::devices::{self as domain, Revoke};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, accounts::AccountRow};

/// Longest search string accepted (a localpart has at most 64 characters).
const MAX_SEARCH_CHARS: usize = 64;

/// `{user_id}` of a path: a localpart, or the full id of a user of this server.
fn localpart(state: &AppState, raw: &str) -> Result<Localpart, ApiError> {
    if raw.contains('@') {
        let user = UserId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))?;
        if user.server_name() != state.config.server_name {
            return Err(ApiError::not_found(&format!(
                "user {user} (not an account of this server)"
            )));
        }
        Ok(user.localpart())
    } else {
        Localpart::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
    }
}

fn user(state: &AppState, row: AccountRow) -> Result<AdminUser, ApiError> {
    let localpart = Localpart::parse(&row.localpart).map_err(|e| ApiError::internal("stored localpart", e))?;
    Ok(AdminUser {
        user_id: UserId::new(&localpart, &state.config.server_name),
        created_at: row.created_at,
        deactivated: row.deactivated_at.is_some(),
        deactivated_at: row.deactivated_at,
        devices: row.devices,
    })
}

async fn load(state: &AppState, localpart: &Localpart) -> Result<AdminUser, ApiError> {
    let row = store::accounts::get(&state.pool.get().await?, localpart)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {localpart}")))?;
    user(state, row)
}

pub async fn list(state: web::Data<AdminState>, query: web::Query<UserQuery>) -> Result<web::Json<UserList>, ApiError> {
    let app = &state.app;
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_USERS_PER_PAGE);
    if !(1..=MAX_USERS_PER_PAGE).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("limit is 1 to {MAX_USERS_PER_PAGE}"),
        ));
    }
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("search has at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    // PostgreSQL text cannot hold NUL: such a string matches no localpart anyway, but
    // must be refused here rather than fail in the database.
    if [search, query.after.as_deref()]
        .into_iter()
        .flatten()
        .any(|s| s.contains('\0'))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            "search and after cannot contain NUL characters",
        ));
    }
    let rows = store::accounts::list(&app.pool.get().await?, search, query.after.as_deref(), i64::from(limit)).await?;
    let next_after = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.localpart.clone()))
        .flatten();
    let users = rows.into_iter().map(|row| user(app, row)).collect::<Result<_, _>>()?;
    Ok(web::Json(UserList { users, next_after }))
}

pub async fn get(state: web::Data<AdminState>, path: web::Path<String>) -> Result<web::Json<AdminUser>, ApiError> {
    let localpart = localpart(&state.app, &path)?;
    Ok(web::Json(load(&state.app, &localpart).await?))
}

/// Refuses the account's logins from now on, deletes its devices (every access token
/// stops working at once; their inboxes go with them) and its KeyPackages, so nobody
/// adds it to a group any more, here or over federation.
pub async fn deactivate(
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<web::Json<DeactivateResponse>, ApiError> {
    let app = &state.app;
    let localpart = localpart(app, &path)?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    if !store::accounts::set_deactivated(&tx, &localpart, true).await? {
        return Err(ApiError::not_found(&format!("user {localpart}")));
    }
    let deleted_key_packages = store::key_packages::delete_of_account(&tx, &localpart).await?;
    let revoked = domain::revoke_in(&tx, app, &localpart, Revoke::AllExcept(None)).await?;
    tx.commit().await?;
    domain::close_readers(app, &revoked);
    let revoked_devices = revoked.len() as u64;
    tracing::info!(user = %localpart, revoked_devices, deleted_key_packages, "account deactivated by an administrator");
    Ok(web::Json(DeactivateResponse {
        user: load(app, &localpart).await?,
        revoked_devices,
        deleted_key_packages,
    }))
}

/// The account may log in again (with its password, or one reset meanwhile).
pub async fn reactivate(
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<web::Json<AdminUser>, ApiError> {
    let app = &state.app;
    let localpart = localpart(app, &path)?;
    if !store::accounts::set_deactivated(&app.pool.get().await?, &localpart, false).await? {
        return Err(ApiError::not_found(&format!("user {localpart}")));
    }
    tracing::info!(user = %localpart, "account reactivated by an administrator");
    Ok(web::Json(load(app, &localpart).await?))
}

/// Sets a new password (the registration rules apply) and ends every session.
pub async fn reset_password(
    state: web::Data<AdminState>,
    path: web::Path<String>,
    body: web::Json<ResetPasswordRequest>,
) -> Result<web::Json<ResetPasswordResponse>, ApiError> {
    let app = &state.app;
    let localpart = localpart(app, &path)?;
    let password = body.into_inner().password;
    check_password_rules(&password)?;
    if !store::accounts::exists(&app.pool.get().await?, &localpart).await? {
        return Err(ApiError::not_found(&format!("user {localpart}")));
    }
    let hash = hash_password(&state.app.password_hashes, password).await?;
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    store::accounts::set_password_hash(&tx, &localpart, &hash).await?;
    let revoked = domain::revoke_in(&tx, app, &localpart, Revoke::AllExcept(None)).await?;
    tx.commit().await?;
    domain::close_readers(app, &revoked);
    let revoked_devices = revoked.len() as u64;
    tracing::info!(user = %localpart, revoked_devices, "password reset by an administrator");
    Ok(web::Json(ResetPasswordResponse { revoked_devices }))
}

/// Turns the account's second factor off (secret and recovery codes deleted), for a user
/// who lost both; sessions stay. The next login needs the password only.
pub async fn reset_second_factor(
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<web::Json<ResetSecondFactorResponse>, ApiError> {
    let app = &state.app;
    let localpart = localpart(app, &path)?;
    if !store::accounts::exists(&app.pool.get().await?, &localpart).await? {
        return Err(ApiError::not_found(&format!("user {localpart}")));
    }
    let was_enabled = crate::second_factor::remove(app, &localpart).await?;
    tracing::info!(user = %localpart, was_enabled, "second factor reset by an administrator");
    Ok(web::Json(ResetSecondFactorResponse { was_enabled }))
}

pub async fn devices(
    state: web::Data<AdminState>,
    path: web::Path<String>,
) -> Result<web::Json<AdminDeviceList>, ApiError> {
    let app = &state.app;
    let localpart = localpart(app, &path)?;
    let db = app.pool.get().await?;
    if !store::accounts::exists(&db, &localpart).await? {
        return Err(ApiError::not_found(&format!("user {localpart}")));
    }
    let devices = store::devices::list_with_counts(&db, &localpart)
        .await?
        .into_iter()
        .map(|row| {
            Ok(AdminDevice {
                device_id: DeviceId::parse(&row.device.device_id)
                    .map_err(|e| ApiError::internal("stored device id", e))?,
                display_name: row.device.display_name,
                created_at: row.device.created_at,
                last_seen_at: row.device.last_seen_at,
                unclaimed_key_packages: row.unclaimed_key_packages,
                inbox_entries: row.inbox_entries,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(web::Json(AdminDeviceList {
        user_id: UserId::new(&localpart, &app.config.server_name),
        devices,
    }))
}

/// Deletes one device, as its user deleting it would: its token stops working at once.
pub async fn revoke_device(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let app = &state.app;
    let (user, device) = path.into_inner();
    let localpart = localpart(app, &user)?;
    let device_id = DeviceId::parse(&device).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))?;
    if domain::revoke(app, &localpart, Revoke::One(&device_id))
        .await?
        .is_empty()
    {
        return Err(ApiError::not_found(&format!("device {device_id} of {localpart}")));
    }
    tracing::info!(user = %localpart, device = %device_id, "device revoked by an administrator");
    Ok(HttpResponse::NoContent().finish())
}
