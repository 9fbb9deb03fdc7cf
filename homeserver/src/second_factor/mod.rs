//! The optional second factor of an account: TOTP (RFC 6238, `totp`) with single-use
//! recovery codes.
//!
//! Enrolment is two steps: `enroll` makes a secret and stores it sealed (`sealing`) as
//! pending; `confirm` takes a code from it, which proves the user's authenticator holds
//! it, turns it on and returns 10 recovery codes, shown once. From then on a login needs
//! a code (`check`, called by `accounts::login` after the password): one within ±1 step
//! of the server's clock and of a later step than any code accepted before (so a code
//! seen over a shoulder or in a log cannot be used again), or an unused recovery code.
//!
//! Recovery codes carry 80 random bits each, so the server keeps a plain SHA-256 of
//! each: a slow hash (Argon2id) protects low-entropy secrets such as passwords against
//! guessing from a stolen hash, but 2^80 guesses per code are out of reach with any
//! hash, and a fast one keeps checking a code cheap.

pub mod sealing;
pub mod totp;

use std::time::{SystemTime, UNIX_EPOCH};

use parley_specs::client_api::{SecondFactorEnrollment, SecondFactorRecoveryCodes, SecondFactorStatus};
use parley_specs::{ErrorCode, Localpart};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::devices::Device;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store;

pub use crate::key_file::KeyFileError;
pub use sealing::SealingKey;

/// What the `otpauth://` URI's label and issuer escape: all but RFC 3986's unreserved.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Recovery codes made at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Random bytes per recovery code: 80 bits, written as 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;

/// How a login's second factor came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The account has no (confirmed) second factor: nothing to check.
    NotEnabled,
    /// A right, unused code.
    Accepted,
    /// The account has one and the request carries no code.
    Missing,
    /// A wrong, used or out-of-window code.
    Wrong,
}

fn now_step() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    totp::step_at(now)
}

fn key(state: &AppState) -> Result<&SealingKey, ApiError> {
    state.second_factor_key.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::SecondFactorUnavailable,
            "this server has no key to keep second-factor secrets with (its operator sets [second_factor] key_file)",
        )
    })
}

fn unsealable(e: sealing::Unsealable) -> ApiError {
    ApiError::internal("second factor", e)
}

/// Starts (or restarts) an enrolment: a new secret, returned once.
pub async fn enroll(state: &AppState, who: &Device) -> Result<SecondFactorEnrollment, ApiError> {
    let key = key(state)?;
    let mut secret = [0u8; totp::SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    let sealed = key.seal(who.localpart.as_str(), &secret);
    if !store::second_factor::begin_enrolment(&state.pool.get().await?, &who.localpart, &sealed).await? {
        return Err(ApiError::new(
            ErrorCode::SecondFactorEnabled,
            "this account's second factor is on already; disable it first to enrol another",
        ));
    }
    let secret = totp::base32_encode(&secret);
    let issuer = state.config.server_name.as_str();
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, URI_COMPONENT).to_string();
    let issuer_param = encode(issuer);
    let label = format!("{issuer_param}:{}", encode(who.user_id.as_str()));
    let otpauth_uri = format!(
        "otpauth://totp/{label}?secret={secret}&issuer={issuer_param}&algorithm=SHA1&digits={}&period={}",
        totp::DIGITS,
        totp::STEP_SECS
    );
    tracing::info!(user = %who.user_id, "second factor enrolment started");
    Ok(SecondFactorEnrollment { secret, otpauth_uri })
}

/// Confirms the pending enrolment with a current code and returns the recovery codes.
pub async fn confirm(state: &AppState, who: &Device, code: &str) -> Result<SecondFactorRecoveryCodes, ApiError> {
    let key = key(state)?;
    let not_pending = || {
        ApiError::new(
            ErrorCode::SecondFactorNotEnabled,
            "no enrolment waits for a code: start one with POST /client/v1/account/2fa/enroll",
        )
    };
    let row = store::second_factor::get(&state.pool.get().await?, &who.localpart)
        .await?
        .ok_or_else(not_pending)?;
    if row.confirmed_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::SecondFactorEnabled,
            "this account's second factor is on already",
        ));
    }
    let secret = key
        .open(who.localpart.as_str(), &row.secret_sealed)
        .map_err(unsealable)?;
    let code = code.trim();
    let step = totp::looks_like_code(code)
        .then(|| totp::matching_step(&secret, code, now_step()))
        .flatten()
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSecondFactor,
                "the code does not match the enrolled secret (check the authenticator's clock)",
            )
        })?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_code_hash(c)).collect();
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let step = i64::try_from(step).map_err(|e| ApiError::internal("second factor step", e))?;
    if !store::second_factor::confirm(&tx, &who.localpart, &row.secret_sealed, step, &hashes).await? {
        return Err(not_pending());
    }
    tx.commit().await?;
    tracing::info!(user = %who.user_id, "second factor enabled");
    Ok(SecondFactorRecoveryCodes { recovery_codes: codes })
}

pub async fn status(state: &AppState, who: &Device) -> Result<SecondFactorStatus, ApiError> {
    let db = state.pool.get().await?;
    let row = store::second_factor::get(&db, &who.localpart).await?;
    let enabled_at = row.as_ref().and_then(|r| r.confirmed_at);
    let recovery_codes_left = if enabled_at.is_some() {
        store::second_factor::recovery_codes_left(&db, &who.localpart).await?
    } else {
        0
    };
    Ok(SecondFactorStatus {
        enabled: enabled_at.is_some(),
        pending: row.is_some() && enabled_at.is_none(),
        recovery_codes_left,
        enabled_at,
    })
}

/// Checks a login's (or a disabling's) code for `account`, spending it when right: a
/// TOTP code's step becomes the last used one, a recovery code is marked used.
pub async fn check(state: &AppState, account: &Localpart, code: Option<&str>) -> Result<Check, ApiError> {
    let db = state.pool.get().await?;
    let Some(row) = store::second_factor::get(&db, account).await? else {
        return Ok(Check::NotEnabled);
    };
    if row.confirmed_at.is_none() {
        return Ok(Check::NotEnabled);
    }
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(Check::Missing);
    };
    if totp::looks_like_code(code) {
        let secret = key(state)?
            .open(account.as_str(), &row.secret_sealed)
            .map_err(unsealable)?;
        let Some(step) = totp::matching_step(&secret, code, now_step()) else {
            return Ok(Check::Wrong);
        };
        let step = i64::try_from(step).map_err(|e| ApiError::internal("second factor step", e))?;
        return Ok(if store::second_factor::use_step(&db, account, step).await? {
            Check::Accepted
        } else {
            Check::Wrong
        });
    }
    let hash = recovery_code_hash(code);
    Ok(if store::second_factor::use_recovery_code(&db, account, &hash).await? {
        tracing::info!(user = %account, "a second-factor recovery code was used");
        Check::Accepted
    } else {
        Check::Wrong
    })
}

/// Turns the account's second factor off (the caller checked what it needs to).
pub async fn remove(state: &AppState, account: &Localpart) -> Result<bool, ApiError> {
    let removed = store::second_factor::delete(&state.pool.get().await?, account).await?;
    if removed {
        tracing::info!(user = %account, "second factor disabled");
    }
    Ok(removed)
}

/// `xxxx-xxxx-xxxx-xxxx`: 80 random bits in lower-case base32.
fn new_recovery_code() -> String {
    let mut bytes = [0u8; RECOVERY_CODE_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let text = totp::base32_encode(&bytes).to_ascii_lowercase();
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The SHA-256 of a recovery code as typed, ignoring case, spaces and dashes.
fn recovery_code_hash(code: &str) -> Vec<u8> {
    let normalized: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normalized.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_random_and_hashed_as_typed_loosely() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_ne!(code, new_recovery_code());
        assert_eq!(
            recovery_code_hash(&code),
            recovery_code_hash(&code.to_ascii_uppercase().replace('-', " "))
        );
        assert!(!totp::looks_like_code(&code));
    }
}
