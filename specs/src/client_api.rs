//! Request and response bodies of the client API.
//!
//! Fields that carry user input the server validates (usernames, passwords) are plain
//! strings here so that a bad value gets its precise error code (`invalid_username`,
//! `weak_password`) instead of a generic `bad_json`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bytes::Base64Bytes;
use crate::ids::{DeviceId, UserId};

pub const MIN_PASSWORD_CHARS: usize = 10;
/// Bounds the work an attacker can make Argon2id do per request (at most 4 KiB of UTF-8).
/// Counted in characters, as JSON Schema's `maxLength` counts, so the OpenAPI document
/// states the rule exactly.
pub const MAX_PASSWORD_CHARS: usize = 1024;
pub const MAX_DEVICE_NAME_CHARS: usize = 100;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub device_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub invite_token: Option<String>,
    /// The new device's MLS signature public key (Ed25519, 32 bytes, base64), bound to
    /// the device in the device key directory as it is created (`invalid_param` when it
    /// is not 32 bytes). Without it, the device's first KeyPackage upload or new group
    /// binds its key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub signature_key: Option<Base64Bytes>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The localpart (`alice`) or the full user id (`alice@a.example`).
    pub username: String,
    pub password: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub device_name: Option<String>,
    /// The new device's MLS signature public key (Ed25519, 32 bytes, base64), bound to
    /// the device in the device key directory as it is created (`invalid_param` when it
    /// is not 32 bytes). Without it, the device's first KeyPackage upload or new group
    /// binds its key.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub signature_key: Option<Base64Bytes>,
    /// The account's second factor, when it has one: the current 6-digit TOTP code, or
    /// one of its unused recovery codes. Missing: `401 second_factor_required`; wrong,
    /// already used, or from outside the ±1-step window: `401 invalid_second_factor`
    /// (counted as a failed login).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub second_factor: Option<String>,
}

/// A logged-in device: what register and login return.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// Shown once; the server keeps only its SHA-256 hash.
    pub access_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmIResponse {
    pub user_id: UserId,
    pub device_id: DeviceId,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub device_id: DeviceId,
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Updated at most once a minute.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// True for the device making the request.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameDeviceRequest {
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyResponse {
    pub ready: bool,
    pub database: bool,
    /// Latest migration applied to the database, if it could be read.
    pub schema_version: Option<i32>,
    /// Latest migration this binary carries.
    pub expected_schema_version: i32,
}

/// Second factor (TOTP, RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps): what
/// `POST /client/v1/account/2fa/enroll` answers. The secret is shown once; enrolment is
/// pending until confirmed with a code (`…/2fa/confirm`); a new enrolment replaces a
/// pending one.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecondFactorEnrollment {
    /// The shared secret, base32 (RFC 4648, no padding), 160 bits.
    pub secret: String,
    /// `otpauth://totp/<issuer>:<user id>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`,
    /// for authenticator apps (usually shown as a QR code).
    pub otpauth_uri: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorConfirmRequest {
    /// A current 6-digit code from the enrolled secret.
    pub code: String,
}

/// The recovery codes, shown once: each replaces a TOTP code once (login, disabling).
/// The server keeps only their SHA-256.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecondFactorRecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorDisableRequest {
    /// The account's password.
    pub password: String,
    /// A current TOTP code or an unused recovery code.
    pub code: String,
}

/// `GET /client/v1/account/2fa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactorStatus {
    /// Whether logins need a second factor.
    pub enabled: bool,
    /// Whether an enrolment waits for its confirming code.
    pub pending: bool,
    /// Recovery codes not used yet (0 when not enabled).
    pub recovery_codes_left: i64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub enabled_at: Option<OffsetDateTime>,
}

/// Debug output of bodies carrying a password or token shows everything else.
macro_rules! redacted_debug {
    ($type:ident { $($shown:ident),* } hides { $($hidden:ident),* }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($hidden), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

redacted_debug!(RegisterRequest { username, device_name, signature_key } hides { password, invite_token });
redacted_debug!(LoginRequest { username, device_name, signature_key } hides { password, second_factor });
redacted_debug!(LoginResponse { user_id, device_id } hides { access_token });
redacted_debug!(ChangePasswordRequest {} hides { current_password, new_password });
redacted_debug!(SecondFactorEnrollment {} hides { secret, otpauth_uri });
redacted_debug!(SecondFactorConfirmRequest {} hides { code });
redacted_debug!(SecondFactorRecoveryCodes {} hides { recovery_codes });
redacted_debug!(SecondFactorDisableRequest {} hides { password, code });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secrets() {
        let login = LoginRequest {
            username: "alice".into(),
            password: "hunter2hunter2".into(),
            device_name: None,
            signature_key: None,
            second_factor: Some("123456".into()),
        };
        let session = LoginResponse {
            user_id: UserId::parse("alice@a.example").expect("id"),
            device_id: DeviceId::parse("ABC").expect("id"),
            access_token: "pat_secret".into(),
        };
        let text = format!("{login:?} {session:?}");
        assert!(!text.contains("hunter2") && !text.contains("pat_secret"), "{text}");
        assert!(text.contains("alice@a.example"));
    }
}
