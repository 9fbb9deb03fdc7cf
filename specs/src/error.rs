//! The stable error codes of the client API. Every error response is
//! `{"error": "<code>", "message": "<human text>"}`; clients branch on the code,
//! never on the message. The codes and their statuses are listed in
//! `specs/protocol.md` (a test keeps that list complete).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON, lacks a required field, or has the wrong content type.
    BadJson,
    /// A field, path or query parameter has a value outside its rules.
    InvalidParam,
    /// The requested username breaks the username rules.
    InvalidUsername,
    /// The new password is too short or too long.
    WeakPassword,
    /// A KeyPackage does not parse, has a bad signature, an unsupported ciphersuite or an
    /// invalid lifetime.
    InvalidKeyPackage,
    /// Bytes that should be an MLS message of a certain kind are not one, or the hub's
    /// public view of the group refuses it (bad signature, invalid proposal, ...).
    InvalidMlsMessage,
    /// The MLS message belongs to another group than the one in the path.
    GroupMismatch,
    /// No access token was sent.
    MissingToken,
    /// The access token is unknown or was revoked.
    UnknownToken,
    /// Wrong username or password.
    InvalidCredentials,
    /// This server does not accept new registrations.
    RegistrationClosed,
    /// Registration needs an invite token and the one given is missing or wrong.
    InvalidInviteToken,
    /// MLS data names another user or device than the one sending it.
    CredentialMismatch,
    /// A KeyPackage (or a new group's leaf) carries another signature key than the one
    /// the device key directory holds for the uploading (or creating) device.
    SignatureKeyMismatch,
    /// A leaf that a commit adds or changes names a device whose homeserver does not
    /// vouch for that signature key (no such device, no key, or another key).
    DeviceNotVouched,
    /// A commit would give one device more than one leaf.
    DuplicateDevice,
    /// An external commit (an MLS `new_member_commit`) the hub does not accept: only a
    /// device that is not a member, of a user with a member device, may join that way,
    /// adding its own leaf and nothing else, removing nobody.
    ExternalJoinRefused,
    /// The device is not a member of the group (any more).
    NotAMember,
    /// The commit would make the group larger than the server allows.
    GroupFull,
    /// The group still has a leaf of a device its owner's server revoked: the hub takes
    /// no application message, and no commit that keeps such a leaf, until one removes it.
    MemberRevoked,
    /// A commit by a member who is not an admin of the group (its group policy
    /// extension) adds or removes other users' devices, or changes roles, name or topic.
    NotGroupAdmin,
    /// A user of the group left it (`POST .../leave`): the hub takes no commit that keeps
    /// their leaves; commit their removal first.
    MemberLeft,
    /// The addressed resource (device, user) does not exist or is not yours.
    NotFound,
    /// No endpoint has this path.
    UnrecognizedEndpoint,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The username is already registered.
    UsernameTaken,
    /// A group with this id exists already.
    GroupExists,
    /// The message is for another epoch than the group's current one (or, for application
    /// messages, the last few); `current_epoch` says where the group is. Catch up and retry.
    WrongEpoch,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// Too many requests; retry after the time in the `Retry-After` header.
    RateLimited,
    /// The server cannot reach its database or is shutting down; retry later.
    Unavailable,
    /// No writable (primary) database is reachable right now, e.g. during a PostgreSQL
    /// failover; retry after `Retry-After`. Nothing of the request was kept, or (for a
    /// submit whose answer was lost) a retry with the same `txn_id` finds it.
    DatabaseUnavailable,
    /// A fault in the server itself, logged there; never caused by client input.
    Internal,
    /// Federation: the request carries no `Parley-Federation` signature.
    MissingSignature,
    /// Federation: the signature is malformed, by a key the origin does not publish (or
    /// whose keys cannot be fetched), or does not verify.
    InvalidSignature,
    /// Federation: the request's timestamp is more than 5 minutes from the server's clock.
    StaleRequest,
    /// Federation: this exact signed request was received before.
    ReplayedRequest,
    /// Federation: the request is addressed to another server.
    WrongDestination,
    /// Federation: the TLS client certificate is not valid for the claimed origin.
    CertificateMismatch,
    /// Federation: this server does not federate with the origin (deny list, or not on
    /// the allow list).
    ServerNotAllowed,
    /// The homeserver of the user or group asked for cannot be reached, or answered with
    /// something this server cannot use; retry later.
    RemoteUnavailable,
    /// Federation: the origin is not the hub of a group it sent ordered messages of.
    NotGroupHub,
    /// Federation: the group named is not hubbed on this server (its id names another hub).
    NotHubbedHere,
    /// Federation: a server submitted for a user of another domain; a server speaks only
    /// for its own users.
    SenderNotOfOrigin,
    /// Login refused: an administrator deactivated this account.
    AccountDeactivated,
    /// Admin API: the admin token is missing or wrong.
    InvalidAdminToken,
    InvalidMetricsToken,
    /// The file is larger than the server's `[files] max_file_bytes`.
    FileTooLarge,
    /// The upload would take the user past a storage quota (`[files] user_quota_bytes`, or
    /// `[key_backup] quota_bytes` for the key backup).
    QuotaExceeded,
    /// No blob with this id exists (any more) on its origin server, or it is not complete.
    UnknownBlob,
    /// The blob's group has no member on the asking server (or, on the origin, the asking
    /// user has no device in it).
    BlobForbidden,
    /// The upload is at another offset than the one the `PUT` names (ask where it stands
    /// and continue from there), or is not complete yet.
    UploadOffsetMismatch,
    /// Client-side, never sent by a server: a downloaded file's ciphertext does not match
    /// the hash its message carries, or a chunk does not decrypt.
    FileHashMismatch,
    /// Login: the password is right but the account has a second factor and the request
    /// carries no `second_factor` code; ask the user for one and log in again.
    SecondFactorRequired,
    /// A second-factor code (TOTP or recovery) is wrong, already used, or outside the
    /// ±1-step window. At login it counts as a failed attempt.
    InvalidSecondFactor,
    /// Second factor: enrolment asked for while one is already enabled.
    SecondFactorEnabled,
    /// Second factor: confirming with no pending enrolment, or disabling with none enabled.
    SecondFactorNotEnabled,
    /// Second factor: this server has no key to seal TOTP secrets with (neither
    /// `[second_factor] key_file` nor `[federation] signing_key` is configured).
    SecondFactorUnavailable,
    /// Key backup: the chunk's stored version is not the `expected_version` of the upload
    /// (another device wrote it since): read the manifest again, merge, retry.
    BackupVersionConflict,
    /// A code this version of the SDK does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code a server can send, in documentation order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadJson,
        Self::InvalidParam,
        Self::InvalidUsername,
        Self::WeakPassword,
        Self::InvalidKeyPackage,
        Self::InvalidMlsMessage,
        Self::GroupMismatch,
        Self::MissingToken,
        Self::UnknownToken,
        Self::InvalidCredentials,
        Self::RegistrationClosed,
        Self::InvalidInviteToken,
        Self::CredentialMismatch,
        Self::SignatureKeyMismatch,
        Self::DeviceNotVouched,
        Self::DuplicateDevice,
        Self::ExternalJoinRefused,
        Self::NotAMember,
        Self::GroupFull,
        Self::MemberRevoked,
        Self::NotGroupAdmin,
        Self::MemberLeft,
        Self::NotFound,
        Self::UnrecognizedEndpoint,
        Self::MethodNotAllowed,
        Self::UsernameTaken,
        Self::GroupExists,
        Self::WrongEpoch,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::Unavailable,
        Self::DatabaseUnavailable,
        Self::Internal,
        Self::MissingSignature,
        Self::InvalidSignature,
        Self::StaleRequest,
        Self::ReplayedRequest,
        Self::WrongDestination,
        Self::CertificateMismatch,
        Self::ServerNotAllowed,
        Self::RemoteUnavailable,
        Self::NotGroupHub,
        Self::NotHubbedHere,
        Self::SenderNotOfOrigin,
        Self::AccountDeactivated,
        Self::InvalidAdminToken,
        Self::InvalidMetricsToken,
        Self::FileTooLarge,
        Self::QuotaExceeded,
        Self::UnknownBlob,
        Self::BlobForbidden,
        Self::UploadOffsetMismatch,
        Self::SecondFactorRequired,
        Self::InvalidSecondFactor,
        Self::SecondFactorEnabled,
        Self::SecondFactorNotEnabled,
        Self::SecondFactorUnavailable,
        Self::BackupVersionConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::InvalidParam => "invalid_param",
            Self::InvalidUsername => "invalid_username",
            Self::WeakPassword => "weak_password",
            Self::InvalidKeyPackage => "invalid_key_package",
            Self::InvalidMlsMessage => "invalid_mls_message",
            Self::GroupMismatch => "group_mismatch",
            Self::MissingToken => "missing_token",
            Self::UnknownToken => "unknown_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::RegistrationClosed => "registration_closed",
            Self::InvalidInviteToken => "invalid_invite_token",
            Self::CredentialMismatch => "credential_mismatch",
            Self::SignatureKeyMismatch => "signature_key_mismatch",
            Self::DeviceNotVouched => "device_not_vouched",
            Self::DuplicateDevice => "duplicate_device",
            Self::ExternalJoinRefused => "external_join_refused",
            Self::NotAMember => "not_a_member",
            Self::GroupFull => "group_full",
            Self::MemberRevoked => "member_revoked",
            Self::NotGroupAdmin => "not_group_admin",
            Self::MemberLeft => "member_left",
            Self::NotFound => "not_found",
            Self::UnrecognizedEndpoint => "unrecognized_endpoint",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UsernameTaken => "username_taken",
            Self::GroupExists => "group_exists",
            Self::WrongEpoch => "wrong_epoch",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::Internal => "internal",
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::StaleRequest => "stale_request",
            Self::ReplayedRequest => "replayed_request",
            Self::WrongDestination => "wrong_destination",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::ServerNotAllowed => "server_not_allowed",
            Self::RemoteUnavailable => "remote_unavailable",
            Self::NotGroupHub => "not_group_hub",
            Self::NotHubbedHere => "not_hubbed_here",
            Self::SenderNotOfOrigin => "sender_not_of_origin",
            Self::AccountDeactivated => "account_deactivated",
            Self::InvalidAdminToken => "invalid_admin_token",
            Self::InvalidMetricsToken => "invalid_metrics_token",
            Self::FileTooLarge => "file_too_large",
            Self::QuotaExceeded => "quota_exceeded",
            Self::UnknownBlob => "unknown_blob",
            Self::BlobForbidden => "blob_forbidden",
            Self::UploadOffsetMismatch => "upload_offset_mismatch",
            Self::FileHashMismatch => "file_hash_mismatch",
            Self::SecondFactorRequired => "second_factor_required",
            Self::InvalidSecondFactor => "invalid_second_factor",
            Self::SecondFactorEnabled => "second_factor_enabled",
            Self::SecondFactorNotEnabled => "second_factor_not_enabled",
            Self::SecondFactorUnavailable => "second_factor_unavailable",
            Self::BackupVersionConflict => "backup_version_conflict",
            Self::Unknown => "unknown",
        }
    }

    /// The HTTP status that always accompanies this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadJson
            | Self::InvalidParam
            | Self::InvalidUsername
            | Self::WeakPassword
            | Self::InvalidKeyPackage
            | Self::InvalidMlsMessage
            | Self::GroupMismatch => 400,
            Self::MissingToken
            | Self::UnknownToken
            | Self::InvalidCredentials
            | Self::MissingSignature
            | Self::InvalidSignature
            | Self::StaleRequest
            | Self::ReplayedRequest
            | Self::InvalidAdminToken
            | Self::InvalidMetricsToken
            | Self::SecondFactorRequired
            | Self::InvalidSecondFactor => 401,
            Self::CertificateMismatch
            | Self::ServerNotAllowed
            | Self::RegistrationClosed
            | Self::InvalidInviteToken
            | Self::CredentialMismatch
            | Self::SignatureKeyMismatch
            | Self::DeviceNotVouched
            | Self::DuplicateDevice
            | Self::ExternalJoinRefused
            | Self::NotAMember
            | Self::GroupFull
            | Self::MemberRevoked
            | Self::NotGroupAdmin
            | Self::MemberLeft
            | Self::NotGroupHub
            | Self::SenderNotOfOrigin
            | Self::AccountDeactivated
            | Self::BlobForbidden => 403,
            Self::NotFound | Self::UnrecognizedEndpoint | Self::UnknownBlob => 404,
            Self::MethodNotAllowed => 405,
            Self::UsernameTaken
            | Self::GroupExists
            | Self::WrongEpoch
            | Self::UploadOffsetMismatch
            | Self::BackupVersionConflict
            | Self::SecondFactorEnabled
            | Self::SecondFactorNotEnabled => 409,
            Self::PayloadTooLarge | Self::FileTooLarge => 413,
            Self::FileHashMismatch => 422,
            Self::QuotaExceeded => 507,
            Self::WrongDestination | Self::NotHubbedHere => 421,
            Self::RateLimited => 429,
            Self::SecondFactorUnavailable => 501,
            Self::RemoteUnavailable => 502,
            Self::Unavailable | Self::DatabaseUnavailable => 503,
            Self::Internal | Self::Unknown => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    /// With `rate_limited` (and the 503 codes): milliseconds until a retry may succeed
    /// (also in `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// With `wrong_epoch`: the group's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_code_matches_as_str() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).ok(), Some(*code));
        }
    }

    #[test]
    fn unknown_codes_do_not_break_old_clients() {
        let body: ErrorBody = serde_json::from_str(r#"{"error":"from_the_future","message":"m"}"#).expect("parses");
        assert_eq!(body.error, ErrorCode::Unknown);
    }

    /// Every code a server can send is documented, with its status, in protocol.md.
    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../protocol.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(doc.contains(&row), "protocol.md lacks the row starting {row}");
        }
    }

    /// The OpenAPI `Error` schemas (client and admin API) list exactly the codes a
    /// server can send.
    #[test]
    fn openapi_error_enum_matches() {
        for (file, yaml) in [
            ("client-api.yaml", include_str!("../openapi/client-api.yaml")),
            ("admin-api.yaml", include_str!("../openapi/admin-api.yaml")),
        ] {
            let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("valid YAML");
            let listed: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
                .as_sequence()
                .expect("Error.error has an enum")
                .iter()
                .filter_map(|v| v.as_str())
                .collect();
            let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
            assert_eq!(listed, codes, "{file}");
        }
    }
}
