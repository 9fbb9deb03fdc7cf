//! Accounts and their devices: the rules of registration, login and password change.

use std::net::IpAddr;

use parley_specs::client_api::{
    ChangePasswordRequest, LoginRequest, LoginResponse, MAX_DEVICE_NAME_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
    RegisterRequest, SecondFactorDisableRequest,
};
use parley_specs::keys_api::SIGNATURE_KEY_LEN;
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, Localpart, UserId};
use subtle::ConstantTimeEq;

use crate::credentials::{hash_password, new_access_token, new_device_id, verify_password};
use crate::devices::Device;
use crate::error::ApiError;
use crate::rate_limit::LoginOutcome;
use crate::second_factor;
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
    // Said only to whoever knows the password.
    let deactivated_error = || {
        ApiError::new(
            ErrorCode::AccountDeactivated,
            "an administrator of this server deactivated this account",
        )
    };
    let (second_factor, account) = (req.second_factor, &localpart);
    check_credentials(state, account, client, req.password, stored, |right| async move {
        if !right {
            return Err(invalid());
        }
        if deactivated {
            return Err(deactivated_error());
        }
        second_factor_verdict(state, account, second_factor.as_deref()).await
    })
    .await?;
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
    check_credentials(
        state,
        &who.localpart,
        client,
        req.current_password,
        stored,
        |right| async move {
            match right {
                true => Ok(LoginOutcome::RightPassword),
                false => Err(ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the current password is wrong",
                )),
            }
        },
    )
    .await?;
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

/// Checks `password` against the account's (`stored`: its hash, `None` for no such
/// account, which takes as long), then lets `then` decide on whether it was right, within
/// the account's failure budgets for this client (`rate_limit::LoginThrottle`): only a
/// wrong password, or a wrong second factor after a right password (`then` answers
/// `WrongPassword` through `invalid_second_factor`), counts, and only against the
/// client's own network and the account's slower budget, so a stranger's failures cannot
/// lock the owner out.
async fn check_credentials<F, Fut>(
    state: &AppState,
    account: &Localpart,
    client: Option<IpAddr>,
    password: String,
    stored: Option<String>,
    then: F,
) -> Result<(), ApiError>
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future<Output = Result<LoginOutcome, ApiError>>,
{
    let attempt = state
        .login_failures
        .begin(account.as_str(), client)
        .map_err(ApiError::rate_limited)?;
    let verdict = if password.chars().count() > MAX_PASSWORD_CHARS {
        Ok(false)
    } else {
        verify_password(&state.password_hashes, password, stored).await
    };
    let decided = match &verdict {
        Ok(right) => then(*right).await,
        Err(e) => Err(e.clone()),
    };
    let outcome = match (&verdict, &decided) {
        (Ok(true), Ok(outcome)) => *outcome,
        (Ok(false), _) => LoginOutcome::WrongPassword,
        (Ok(true), Err(e)) if e.code == ErrorCode::InvalidSecondFactor => LoginOutcome::WrongPassword,
        _ => LoginOutcome::NotChecked,
    };
    state.login_failures.finish(attempt, outcome);
    decided.map(drop)
}

/// After a right password: the second factor, if the account has one. A missing code is
/// not a failure (clients learn only then that one is needed); a wrong one is.
async fn second_factor_verdict(
    state: &AppState,
    account: &Localpart,
    code: Option<&str>,
) -> Result<LoginOutcome, ApiError> {
    match second_factor::check(state, account, code).await? {
        second_factor::Check::NotEnabled | second_factor::Check::Accepted => Ok(LoginOutcome::RightPassword),
        second_factor::Check::Missing => Err(ApiError::new(
            ErrorCode::SecondFactorRequired,
            "this account has a second factor: send the current code (or a recovery code) as `second_factor`",
        )),
        second_factor::Check::Wrong => Err(invalid_second_factor()),
    }
}

fn invalid_second_factor() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSecondFactor,
        "the second-factor code is wrong, was used already, or is not for the current time",
    )
}

/// Turns the account's second factor off: needs the password and a current code (or a
/// recovery code), counted like a login's.
pub async fn disable_second_factor(
    state: &AppState,
    who: &Device,
    req: SecondFactorDisableRequest,
    client: Option<IpAddr>,
) -> Result<(), ApiError> {
    let stored = store::accounts::password_hash(&state.pool.get().await?, &who.localpart).await?;
    let code = req.code;
    check_credentials(
        state,
        &who.localpart,
        client,
        req.password,
        stored,
        |right| async move {
            if !right {
                return Err(ApiError::new(ErrorCode::InvalidCredentials, "the password is wrong"));
            }
            match second_factor::check(state, &who.localpart, Some(&code)).await? {
                second_factor::Check::Accepted => Ok(LoginOutcome::RightPassword),
                second_factor::Check::Wrong => Err(invalid_second_factor()),
                second_factor::Check::NotEnabled | second_factor::Check::Missing => Err(ApiError::new(
                    ErrorCode::SecondFactorNotEnabled,
                    "this account has no second factor to disable",
                )),
            }
        },
    )
    .await?;
    second_factor::remove(state, &who.localpart).await?;
    Ok(())
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
