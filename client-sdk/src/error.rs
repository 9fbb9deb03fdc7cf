use std::path::PathBuf;
use std::time::Duration;

use parley_specs::{ErrorBody, ErrorCode};

/// Everything a call to the homeserver can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request with a documented error code.
    #[error("{} ({})", body.message, body.error)]
    Api { status: u16, body: ErrorBody, retry_after: Option<Duration> },
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered with something that is not what the API promises.
    #[error("unexpected response from {url}: {reason}")]
    Decode { url: String, reason: String },
    #[error("cannot use CA file {path}: {reason}")]
    InvalidCaFile { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("invalid server URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    /// The call needs an access token and the client has none.
    #[error("not logged in")]
    NotLoggedIn,
}

impl Error {
    /// The API error code, when the server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }

    /// How long the server asked us to wait (`rate_limited`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds the error for a non-success response. A body that is not an API error
    /// (a proxy's HTML page, say) becomes `ErrorCode::Unknown` with the status kept.
    pub(crate) fn from_response(status: u16, retry_after: Option<Duration>, bytes: &[u8]) -> Self {
        let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).trim().to_owned();
            ErrorBody {
                error: ErrorCode::Unknown,
                message: if text.is_empty() { format!("HTTP status {status}") } else { format!("HTTP status {status}: {text}") },
                retry_after_ms: None,
            }
        });
        let retry_after = retry_after.or(body.retry_after_ms.map(Duration::from_millis));
        Self::Api { status, body, retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_bodies_are_parsed() {
        let err = Error::from_response(429, None, br#"{"error":"rate_limited","message":"slow down","retry_after_ms":1500}"#);
        assert_eq!(err.code(), Some(ErrorCode::RateLimited));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(err.to_string(), "slow down (rate_limited)");
    }

    #[test]
    fn foreign_bodies_keep_the_status() {
        let err = Error::from_response(502, None, b"<html>Bad Gateway</html>");
        assert_eq!(err.code(), Some(ErrorCode::Unknown));
        assert!(err.to_string().contains("502"), "{err}");
        let empty = Error::from_response(500, None, b"");
        assert!(empty.to_string().contains("HTTP status 500"));
    }
}
