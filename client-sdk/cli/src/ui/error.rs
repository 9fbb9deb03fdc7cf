//! Errors of the local API: `{"error": "<code>", "message": "<plain words>"}` with an
//! HTTP status (see specs/local-ui-api.md), mapped from the SDK's errors.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use parley_sdk::messenger::MessengerError;
use parley_sdk::{Error, ProfileError, SignInError};
use parley_specs::ErrorCode;

use super::api::ErrorBody;

/// One refusal or failure of the local API.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: self.code.clone(),
            message: self.message.clone(),
        })
    }
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_secret() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad_secret",
            "This page is not allowed to use Parley: open the address `parley ui` printed.",
        )
    }

    pub(crate) fn bad_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "Requests from other sites or addresses are refused.",
        )
    }

    pub(crate) fn not_signed_in() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_signed_in", "You are not signed in.")
    }

    pub(crate) fn locked() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_signed_in",
            "Unlock your message store with its passphrase first.",
        )
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub(crate) fn not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "not_allowed", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn server_error(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match &err {
            Error::Transport { reason, .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                "unreachable",
                format!("The homeserver cannot be reached ({reason}). Check your connection and try again."),
            ),
            Error::Api { status, body, .. } => {
                let message = body.message.clone();
                match body.error {
                    ErrorCode::InvalidCredentials => Self::new(
                        StatusCode::UNAUTHORIZED,
                        "wrong_password",
                        "Wrong username or password.",
                    ),
                    ErrorCode::UnknownToken | ErrorCode::MissingToken => Self::new(
                        StatusCode::UNAUTHORIZED,
                        "not_signed_in",
                        "This device was signed out at the homeserver; sign in again.",
                    ),
                    ErrorCode::NotFound => Self::not_found(message),
                    ErrorCode::NotAMember => Self::not_allowed(message),
                    _ if *status == 403 => Self::not_allowed(message),
                    code => {
                        let code = serde_json::to_value(code)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_else(|| "server_error".to_owned());
                        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                        Self { status, code, message }
                    }
                }
            }
            Error::NotLoggedIn => Self::not_signed_in(),
            Error::InvalidUrl(_) | Error::InvalidCaFile { .. } | Error::Tls(_) => Self::invalid_input(err.to_string()),
            _ => Self::server_error(err.to_string()),
        }
    }
}

impl From<ProfileError> for ApiError {
    fn from(err: ProfileError) -> Self {
        Self::server_error(err.to_string())
    }
}

impl From<SignInError> for ApiError {
    fn from(err: SignInError) -> Self {
        match err {
            SignInError::Api(e) => e.into(),
            SignInError::CaNotSaved(e) => e.into(),
            SignInError::SessionNotSaved(e) => {
                Self::server_error(format!("Signed in, but the session could not be saved: {e}"))
            }
            SignInError::Messenger(e) => {
                Self::server_error(format!("Signed in, but this device's messaging was not set up: {e}"))
            }
        }
    }
}

impl From<MessengerError> for ApiError {
    fn from(err: MessengerError) -> Self {
        match err {
            MessengerError::Api(e) => e.into(),
            MessengerError::WrongPassphrase { .. } => Self::new(
                StatusCode::UNAUTHORIZED,
                "wrong_password",
                "Wrong passphrase for the message store on this computer.",
            ),
            MessengerError::InvalidId(e) => Self::invalid_input(e.to_string()),
            MessengerError::WeakPassphrase(n) => {
                Self::invalid_input(format!("The passphrase is too short: use at least {n} characters."))
            }
            e @ (MessengerError::TextTooLong { .. } | MessengerError::InvalidReaction(_)) => {
                Self::invalid_input(e.to_string())
            }
            e @ MessengerError::NotYourMessage { .. } => Self::not_allowed(e.to_string()),
            e @ (MessengerError::OwnSafetyNumber(_) | MessengerError::CannotRemoveSelf) => {
                Self::invalid_input(e.to_string())
            }
            e @ MessengerError::FileRefused(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "file_hash_mismatch", e.to_string())
            }
            e @ (MessengerError::UnknownGroup(_)
            | MessengerError::NoFile { .. }
            | MessengerError::UnknownMessage { .. }
            | MessengerError::NoSharedGroup(_)
            | MessengerError::NotInGroup { .. }) => Self::not_found(e.to_string()),
            e @ (MessengerError::NotAMember(_)
            | MessengerError::CannotAdd { .. }
            | MessengerError::ConversationRefused { .. }) => Self::not_allowed(e.to_string()),
            MessengerError::Backup(e) => match e {
                parley_sdk::backup::BackupError::WrongKey(_)
                | parley_sdk::backup::BackupError::MalformedRecoveryKey => {
                    Self::new(StatusCode::UNAUTHORIZED, "wrong_recovery_key", e.to_string())
                }
                parley_sdk::backup::BackupError::NoBackup => Self::not_found(e.to_string()),
                parley_sdk::backup::BackupError::WeakPassphrase(_) => Self::invalid_input(e.to_string()),
                e @ (parley_sdk::backup::BackupError::Exists | parley_sdk::backup::BackupError::NotEnabled) => {
                    Self::new(StatusCode::CONFLICT, "backup_state", e.to_string())
                }
                e => Self::new(StatusCode::BAD_GATEWAY, "backup_refused", e.to_string()),
            },
            e @ MessengerError::VerifiedContactChanged { .. } => {
                Self::new(StatusCode::CONFLICT, "verified_contact_changed", e.to_string())
            }
            e => Self::server_error(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use parley_specs::ErrorBody;

    use super::*;

    #[test]
    fn sdk_errors_become_plain_codes() {
        let unreachable: ApiError = Error::Transport {
            url: "https://x".into(),
            reason: "connection refused".into(),
        }
        .into();
        assert_eq!(
            (unreachable.status.as_u16(), unreachable.code.as_str()),
            (502, "unreachable")
        );
        let api = |status, error| Error::Api {
            status,
            body: ErrorBody {
                error,
                message: "m".into(),
                retry_after_ms: None,
                current_epoch: None,
            },
            retry_after: None,
        };
        let wrong: ApiError = api(401, ErrorCode::InvalidCredentials).into();
        assert_eq!(wrong.code, "wrong_password");
        let taken: ApiError = api(409, ErrorCode::UsernameTaken).into();
        assert_eq!((taken.status.as_u16(), taken.code.as_str()), (409, "username_taken"));
        let forbidden: ApiError = api(403, ErrorCode::RegistrationClosed).into();
        assert_eq!(forbidden.code, "not_allowed");
        let blocked: ApiError = MessengerError::VerifiedContactChanged { users: vec![] }.into();
        assert_eq!(blocked.status.as_u16(), 409);
    }
}
