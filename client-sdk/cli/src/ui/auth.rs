//! Who may use the local API: requests addressed to `127.0.0.1:<port>` (`Host`, against
//! DNS rebinding) from the page this process served (`Origin`), and, for the API, carrying
//! the per-launch secret (the `Authorization: Bearer` header, or `?secret=` for the event
//! WebSocket). Static files need no secret.
//!
//! The secret is not checked by comparing path strings: the router decodes a path before
//! matching it (`/%61pi/session` is routed to `/api/session`), so a guard that read the raw
//! path let such requests through. [`require_secret`] wraps the API's scope instead, so
//! whatever the router hands to an API handler has passed it, however the path was
//! spelled; and the web app's files are never served for a path that reads as the API's
//! under any decoding ([`reads_as_api`]).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use parley_specs::endpoints::local_ui;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::server::Ui;

/// 32 random bytes, hex.
pub(crate) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares in constant time (for equal lengths; the length is not secret).
pub(crate) fn secret_matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Why a request is refused for where it comes from, if it is: every request, files
/// included, must be addressed to this process and come from its page (or no page).
pub(crate) fn check_host_and_origin(port: u16, host: Option<&str>, origin: Option<&str>) -> Result<(), ApiError> {
    let own = format!("127.0.0.1:{port}");
    if host != Some(own.as_str()) {
        return Err(ApiError::bad_origin());
    }
    if origin.is_some_and(|o| o != format!("http://{own}")) {
        return Err(ApiError::bad_origin());
    }
    Ok(())
}

/// Why an API request is refused for its secret, if it is. `routed_path` is the path as
/// the router matched it (decoded): the event WebSocket, which browsers cannot give a
/// header, takes the secret from the query instead.
pub(crate) fn check_secret(
    secret: &str,
    routed_path: &str,
    authorization: Option<&str>,
    query: &str,
) -> Result<(), ApiError> {
    let given = if routed_path == local_ui::EVENTS.path {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v.into_owned())
    } else {
        authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(|s| s.trim().to_owned())
    };
    match given {
        Some(given) if secret_matches(secret, &given) => Ok(()),
        _ => Err(ApiError::bad_secret()),
    }
}

/// Whether `path` names the local API under any reading a server or a browser might give
/// it: percent-decoded (repeatedly: `%2561` is `%61` is `a`), `\` read as `/`, empty and
/// `.` segments dropped, `..` segments resolved, letters in any case. The web app's files
/// are served only for paths that do not.
pub(crate) fn reads_as_api(path: &str) -> bool {
    let mut decoded = path.to_owned();
    // Each round removes a layer of encoding; a path encoded more often than this is
    // treated as the API's, which refuses it.
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8_lossy()
            .into_owned();
        if next == decoded {
            return first_segment(&decoded).is_some_and(|s| s.eq_ignore_ascii_case(api_segment()));
        }
        decoded = next;
    }
    true
}

/// `api`: the local API's prefix without its slash.
fn api_segment() -> &'static str {
    local_ui::PREFIX.trim_start_matches('/')
}

/// The first segment of `path` once `\` is read as `/` and dot segments are resolved.
fn first_segment(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.first().map(|s| (*s).to_owned())
}

/// The middleware applying [`check_host_and_origin`] to every request.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<Ui>>() {
        None => Err(ApiError::server_error("the local server is misconfigured")),
        Some(ui) => {
            let headers = req.headers();
            let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
            check_host_and_origin(
                ui.port,
                text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
                text(header::ORIGIN),
            )
        }
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(req.into_response(refusal.error_response()).map_into_right_body()),
    }
}

/// The middleware wrapping the API's scope: everything routed into it, whichever way its
/// path was spelled, needs the secret ([`check_secret`]).
pub(crate) async fn require_secret(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<Ui>>() {
        None => Err(ApiError::server_error("the local server is misconfigured")),
        Some(ui) => check_secret(
            &ui.secret,
            req.match_info().as_str(),
            req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()),
            req.query_string(),
        ),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(req.into_response(refusal.error_response()).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_host() {
        let ok = |host, origin| check_host_and_origin(4000, host, origin);
        assert!(ok(Some("127.0.0.1:4000"), None).is_ok());
        assert!(ok(Some("127.0.0.1:4000"), Some("http://127.0.0.1:4000")).is_ok());
        let refused = |host, origin| ok(host, origin).err().map(|e| e.code);
        assert_eq!(
            refused(Some("127.0.0.1:4000"), Some("http://evil.example")),
            Some("bad_origin".into())
        );
        assert_eq!(
            refused(Some("127.0.0.1:4000"), Some("http://localhost:4000")),
            Some("bad_origin".into())
        );
        assert_eq!(
            refused(Some("evil.example:4000"), None),
            Some("bad_origin".into()),
            "rebinding"
        );
        assert_eq!(refused(None, None), Some("bad_origin".into()), "no Host");
    }

    #[test]
    fn secret() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, new_secret());
        let bearer = format!("Bearer {secret}");
        let code = |r: Result<(), ApiError>| r.err().map(|e| e.code);
        assert!(check_secret(&secret, "/api/session", Some(&bearer), "").is_ok());
        assert_eq!(
            code(check_secret(&secret, "/api/session", None, "")),
            Some("bad_secret".into())
        );
        assert_eq!(
            code(check_secret(&secret, "/api/session", Some("Bearer 00"), "")),
            Some("bad_secret".into())
        );
        let query = format!("secret={secret}");
        assert!(check_secret(&secret, "/api/events", None, &query).is_ok());
        assert!(check_secret(&secret, "/api/events", None, "secret=nope").is_err());
        assert!(
            check_secret(&secret, "/api/session", None, &query).is_err(),
            "only the WebSocket takes it in the query"
        );
    }

    #[test]
    fn paths_that_read_as_the_api() {
        for path in [
            "/api",
            "/api/session",
            "/%61pi/session",
            "/%2561pi/session",
            "/%252561pi",
            "/API/session",
            "//api/session",
            "/./api",
            "/x/../api/session",
            "/x/%2e%2e/api",
            "/api%2Fsession",
            "\\api\\session",
        ] {
            assert!(reads_as_api(path), "{path}");
        }
        for path in [
            "/",
            "/index.html",
            "/assets/index.js",
            "/apis",
            "/conversations/api",
            "/x/api",
        ] {
            assert!(!reads_as_api(path), "{path}");
        }
    }
}
