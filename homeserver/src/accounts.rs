//! Accounts and their devices: the rules of registration, login and password change.

use std::net::IpAddr;

use parley_specs::client_api::{
    ChangePasswordRequest, LoginRequest, LoginResponse, MAX_DEVICE_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
    RegisterRequest,
};
use parley_specs::keys_api::SIGNATURE_KEY_LEN;
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, Localpart, UserId};
use subtle::ConstantTimeEq;

use crate::credentials::{hash_password, new_access_token, new_device_id, verify_password};
use crate::devices::Device;
use crate::error::ApiError;
use crate::rate_limit::LoginOutcome;
use crate::state::AppState;
use crate::store::{self, Db};

const DEFAULT_DEVICE_NAME: &str = "unnamed device";

pub async fn register(
    state: &AppState,
    req: RegisterRequest,
    client: Option<IpAddr>,
) -> Result<LoginResponse, ApiError> {
    let registration = &state.config.registration;
    if !registration.enabled {
        return Err(ApiError::new(
            ErrorCode::RegistrationClosed,
            "this server does not accept new registrations",
        ));
    }
    if let Some(expected) = &registration.invite_token {
        let given = req.invite_token.as_deref().unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::new(
                ErrorCode::InvalidInviteToken,
                "registration needs a valid invite token",
            ));
        }
    }
    let localpart =
        Localpart::parse(&req.username).map_err(|e| ApiError::new(ErrorCode::InvalidUsername, e.to_string()))?;
    check_password_rules(&req.password)?;
    let device_name = device_name(req.device_name)?;
    let signature_key = signature_key(req.signature_key)?;
    limit_address(state, client)?;

    // Cheap early answer; the insert below is what decides a race.
    let taken = || ApiError::new(ErrorCode::UsernameTaken, format!("the username {localpart} is taken"));
    if store::accounts::exists(&state.pool.get().await?, &localpart).await? {
        return Err(taken());
    }
    let hash = hash_password(&state.password_hashes, req.password).await?;
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    if !store::accounts::insert(&tx, &localpart, &hash).await? {
        return Err(taken());
    }
    let session = new_device(&tx, state, &localpart, &device_name, signature_key.as_deref()).await?;
    tx.commit().await?;
    tracing::info!(user = %session.user_id, device = %session.device_id, "registered");
    Ok(session)
}

pub async fn login(state: &AppState, req: LoginRequest, client: Option<IpAddr>) -> Result<LoginResponse, ApiError> {
    let invalid = || ApiError::new(ErrorCode::InvalidCredentials, "wrong username or password");
    let localpart = parse_login_name(state, &req.username).ok_or_else(invalid)?;
    let device_name = device_name(req.device_name)?;
    let signature_key = signature_key(req.signature_key)?;
    limit_address(state, client)?;
    let stored = store::accounts::login_state(&state.pool.get().await?, &localpart).await?;
    let (stored, deactivated) = stored.map_or((None, false), |(hash, deactivated)| (Some(hash), deactivated));
    if !check_password(state, &localpart, client, req.password, stored).await? {
        return Err(invalid());
    }
    // Said only to whoever knows the password.
    let deactivated_error = || {
        ApiError::new(
            ErrorCode::AccountDeactivated,
            "an administrator of this server deactivated this account",
        )
    };
    if deactivated {
        return Err(deactivated_error());
    }
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    // Under the account's row lock: a deactivation racing this login either waits for
    // this device (and deletes it) or is seen here.
    if !store::accounts::lock_active(&tx, &localpart).await? {
        return Err(deactivated_error());
    }
    let session = new_device(&tx, state, &localpart, &device_name, signature_key.as_deref()).await?;
    tx.commit().await?;
    tracing::info!(user = %session.user_id, device = %session.device_id, "logged in");
    Ok(session)
}

/// Changes the password and logs out every other device of the account.
pub async fn change_password(
    state: &AppState,
    who: &Device,
    req: ChangePasswordRequest,
    client: Option<IpAddr>,
) -> Result<(), ApiError> {
    check_password_rules(&req.new_password)?;
    let stored = store::accounts::password_hash(&state.pool.get().await?, &who.localpart).await?;
    if !check_password(state, &who.localpart, client, req.current_password, stored).await? {
        return Err(ApiError::new(
            ErrorCode::InvalidCredentials,
            "the current password is wrong",
        ));
    }
    let hash = hash_password(&state.password_hashes, req.new_password).await?;
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    store::accounts::set_password_hash(&tx, &who.localpart, &hash).await?;
    let revoked = crate::devices::revoke_in(
        &tx,
        state,
        &who.localpart,
        crate::devices::Revoke::AllExcept(Some(&who.device_id)),
    )
    .await?;
    tx.commit().await?;
    crate::devices::close_readers(state, &revoked);
    tracing::info!(user = %who.user_id, revoked_devices = revoked.len(), "password changed");
    Ok(())
}

/// The name for a new device: the one asked for (at most 100 characters as sent, no
/// control characters), trimmed; absent or blank, a default.
pub fn device_name(name: Option<String>) -> Result<String, ApiError> {
    match name {
        Some(name) if !name.trim().is_empty() => checked_device_name(&name),
        Some(name) => valid_device_name(&name).map(|()| DEFAULT_DEVICE_NAME.to_owned()),
        None => Ok(DEFAULT_DEVICE_NAME.to_owned()),
    }
}

/// A device name as given for a rename: at most 100 characters as sent, no control
/// characters, not blank; stored trimmed. The rules are on the name as sent, so the
/// OpenAPI documents state them exactly (`maxLength`, `pattern`).
pub fn checked_device_name(name: &str) -> Result<String, ApiError> {
    valid_device_name(name)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(device_name_refused());
    }
    Ok(name.to_owned())
}

fn valid_device_name(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > MAX_DEVICE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(device_name_refused());
    }
    Ok(())
}

fn device_name_refused() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParam,
        format!("a device name has 1 to {MAX_DEVICE_NAME_CHARS} characters, not all blank, without control characters"),
    )
}

/// The MLS signature key a new device brings, if any: an Ed25519 public key, 32 bytes.
fn signature_key(key: Option<Base64Bytes>) -> Result<Option<Vec<u8>>, ApiError> {
    match key.map(Base64Bytes::into_vec) {
        Some(key) if key.len() != SIGNATURE_KEY_LEN => Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!(
                "signature_key is {} bytes; a device's MLS signature key is an Ed25519 public key of {SIGNATURE_KEY_LEN} bytes",
                key.len()
            ),
        )),
        key => Ok(key),
    }
}

pub fn check_password_rules(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::new(
            ErrorCode::WeakPassword,
            format!("a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `alice` or `alice@<this server>`; a user of another server cannot log in here.
fn parse_login_name(state: &AppState, name: &str) -> Option<Localpart> {
    if name.contains('@') {
        let user = UserId::parse(name).ok()?;
        (user.server_name() == state.config.server_name).then(|| user.localpart())
    } else {
        Localpart::parse(name).ok()
    }
}

/// Every login and registration attempt counts against its address's budget (an IPv6
/// client's whole /64, which one host usually has), which bounds the password hashing
/// one address can cause.
fn limit_address(state: &AppState, client: Option<IpAddr>) -> Result<(), ApiError> {
    if let Some(ip) = client {
        state
            .login_per_address
            .check(&crate::rate_limit::client_network(ip))
            .map_err(ApiError::rate_limited)?;
    }
    Ok(())
}

/// Whether `password` is the account's (`stored`: its hash, `None` for no such account,
/// which takes as long), within the account's failure budgets for this client
/// (`rate_limit::LoginThrottle`): only a wrong password counts, and only against the
/// client's own network and the account's slower budget, so a stranger's failures cannot
/// lock the owner out.
async fn check_password(
    state: &AppState,
    account: &Localpart,
    client: Option<IpAddr>,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    let attempt = state
        .login_failures
        .begin(account.as_str(), client)
        .map_err(ApiError::rate_limited)?;
    let verdict = if password.chars().count() > MAX_PASSWORD_CHARS {
        Ok(false)
    } else {
        verify_password(&state.password_hashes, password, stored).await
    };
    let outcome = match verdict {
        Ok(true) => LoginOutcome::RightPassword,
        Ok(false) => LoginOutcome::WrongPassword,
        Err(_) => LoginOutcome::NotChecked,
    };
    state.login_failures.finish(attempt, outcome);
    verdict
}

async fn new_device(
    db: &impl Db,
    state: &AppState,
    localpart: &Localpart,
    display_name: &str,
    signature_key: Option<&[u8]>,
) -> Result<LoginResponse, ApiError> {
    let device_id = DeviceId::parse(&new_device_id()).map_err(|e| ApiError::internal("device id", e))?;
    let token = new_access_token();
    // The key is bound in the transaction that creates the device: it never has another.
    store::devices::insert(db, localpart, &device_id, display_name, &token.hash, signature_key).await?;
    Ok(LoginResponse {
        user_id: UserId::new(localpart, &state.config.server_name),
        device_id,
        access_token: token.secret,
    })
}
