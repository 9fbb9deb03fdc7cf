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
redacted_debug!(LoginRequest { username, device_name, signature_key } hides { password });
redacted_debug!(LoginResponse { user_id, device_id } hides { access_token });
redacted_debug!(ChangePasswordRequest {} hides { current_password, new_password });

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
