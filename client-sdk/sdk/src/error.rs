//! The one error type of the SDK.

use std::path::PathBuf;
use std::time::Duration;

use parley_specs::{ErrorBody, ErrorCode};

/// How much of a foreign (non-API) error body is quoted in the synthesized message.
const QUOTED_BODY_CHARS: usize = 200;

/// Everything a call to the homeserver can fail with.
///
/// Branch on [`Error::code`] for refusals by the server; the other variants describe
/// problems before or below the API (configuration, network, TLS).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the request. `body` is the server's error body; when the
    /// response was not one (a proxy's HTML page, say), it is synthesized with
    /// [`ErrorCode::Unknown`] and a message naming the HTTP status.
    #[error("{} ({})", body.message, body.error)]
    Api {
        /// The HTTP status of the response.
        status: u16,
        /// The error code and message.
        body: ErrorBody,
        /// How long to wait before retrying (`Retry-After`, or the body's `retry_after_ms`).
        retry_after: Option<Duration>,
    },
    /// The server could not be reached, or the connection failed before a response arrived.
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// The URL of the request.
        url: String,
        /// What went wrong, e.g. "connection refused" or "TLS: invalid peer certificate: UnknownIssuer".
        reason: String,
    },
    /// The server answered with something that is not what the API promises.
    #[error("unexpected response from {url}: {reason}")]
    Decode {
        /// The URL of the request.
        url: String,
        /// Why the response could not be used.
        reason: String,
    },
    /// The CA file given as [`crate::Trust::CaFile`] cannot be read or holds no usable certificate.
    #[error("cannot use CA file {}: {reason}", path.display())]
    InvalidCaFile {
        /// The file as given.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The TLS configuration could not be built (no system roots, bad CA PEM, ...).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The homeserver URL is not usable (not https, not absolute, ...).
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
    /// The call needs an access token and the client has none.
    #[error("not logged in")]
    NotLoggedIn,
    /// The access token cannot be sent: it holds characters not allowed in an HTTP header
    /// (so it was never issued by a homeserver).
    #[error("the access token is malformed")]
    MalformedToken,
}

impl From<url::ParseError> for Error {
    fn from(err: url::ParseError) -> Self {
        Self::InvalidUrl(err.to_string())
    }
}

impl Error {
    /// The API error code, when the server refused the request; `None` for every other kind.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }

    /// The HTTP status, when the server refused the request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked the client to wait (`rate_limited`, `unavailable`,
    /// `database_unavailable`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds the error for a non-success response from its status, its `Retry-After`
    /// header (already parsed) and its body.
    pub(crate) fn from_response(status: u16, retry_after: Option<Duration>, bytes: &[u8]) -> Self {
        let body = parse_error_body(status, bytes);
        let retry_after = retry_after.or(body.retry_after_ms.map(Duration::from_millis));
        Self::Api {
            status,
            body,
            retry_after,
        }
    }
}

/// The server's error body, or one synthesized with [`ErrorCode::Unknown`] when the body
/// is something else (empty, HTML, JSON of another shape).
fn parse_error_body(status: u16, bytes: &[u8]) -> ErrorBody {
    if let Ok(body) = serde_json::from_slice::<ErrorBody>(bytes) {
        return body;
    }
    let quoted = one_line(&String::from_utf8_lossy(bytes), QUOTED_BODY_CHARS);
    let message = if quoted.is_empty() {
        format!("HTTP status {status}")
    } else {
        format!("HTTP status {status}: {quoted}")
    };
    ErrorBody {
        error: ErrorCode::Unknown,
        message,
        retry_after_ms: None,
        current_epoch: None,
    }
}

/// `text` on one line: whitespace runs collapsed, control characters dropped, at most
/// `max_chars` characters (with an ellipsis when cut).
fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        for c in (!out.is_empty()).then_some(' ').into_iter().chain(word.chars()) {
            if c.is_control() {
                continue;
            }
            if count == max_chars {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is not used by Parley).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_bodies_are_parsed() {
        let err = Error::from_response(
            429,
            None,
            br#"{"error":"rate_limited","message":"slow down","retry_after_ms":1500}"#,
        );
        assert_eq!(err.code(), Some(ErrorCode::RateLimited));
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert_eq!(err.to_string(), "slow down (rate_limited)");
    }

    #[test]
    fn retry_after_header_wins_over_body() {
        let body = br#"{"error":"rate_limited","message":"m","retry_after_ms":1500}"#;
        let err = Error::from_response(429, Some(Duration::from_secs(3)), body);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn unknown_codes_from_newer_servers_are_kept_as_unknown() {
        let err = Error::from_response(418, None, br#"{"error":"teapot","message":"short and stout"}"#);
        assert_eq!(err.code(), Some(ErrorCode::Unknown));
        assert_eq!(err.to_string(), "short and stout (unknown)");
    }

    #[test]
    fn foreign_bodies_keep_the_status() {
        let err = Error::from_response(502, None, b"<html>\n  <b>Bad Gateway</b>\n</html>\n");
        assert_eq!(err.code(), Some(ErrorCode::Unknown));
        assert_eq!(err.status(), Some(502));
        assert_eq!(
            err.to_string(),
            "HTTP status 502: <html> <b>Bad Gateway</b> </html> (unknown)"
        );

        let empty = Error::from_response(500, None, b"");
        assert_eq!(empty.to_string(), "HTTP status 500 (unknown)");

        let other_json = Error::from_response(400, None, br#"{"detail":"nope"}"#);
        assert_eq!(other_json.code(), Some(ErrorCode::Unknown));
        assert!(other_json.to_string().contains("400"), "{other_json}");
    }

    #[test]
    fn huge_or_binary_bodies_are_cut_and_never_panic() {
        let big = "é".repeat(10_000);
        let err = Error::from_response(500, None, big.as_bytes());
        let shown = err.to_string();
        assert!(shown.chars().count() < 300, "{shown}");
        // Invalid UTF-8, cut in the middle of a character, with control bytes.
        let err = Error::from_response(500, None, &[0xff, 0xc3, b'\x1b', b'[', b'2', b'J', 0xc3]);
        assert!(!err.to_string().contains('\x1b'));
    }

    #[test]
    fn non_api_errors_have_no_code() {
        assert_eq!(Error::NotLoggedIn.code(), None);
        assert_eq!(Error::NotLoggedIn.retry_after(), None);
        let err: Error = url::Url::parse("not a url")
            .map(drop)
            .map_err(Error::from)
            .err()
            .unwrap_or(Error::NotLoggedIn);
        assert!(matches!(err, Error::InvalidUrl(_)));
    }
}
