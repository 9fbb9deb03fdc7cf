//! Who may use the local API: requests carrying the per-launch secret (the
//! `Authorization: Bearer` header, or `?secret=` for the event WebSocket), from the page
//! this process served (`Origin`), addressed to `127.0.0.1:<port>` (`Host`, against DNS
//! rebinding). Static files need no secret.

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

/// Why a request is refused, if it is.
pub(crate) fn check(
    port: u16,
    secret: &str,
    path: &str,
    host: Option<&str>,
    origin: Option<&str>,
    authorization: Option<&str>,
    query: &str,
) -> Result<(), ApiError> {
    let own = format!("127.0.0.1:{port}");
    if host != Some(own.as_str()) {
        return Err(ApiError::bad_origin());
    }
    if origin.is_some_and(|o| o != format!("http://{own}")) {
        return Err(ApiError::bad_origin());
    }
    if !is_api(path) {
        return Ok(());
    }
    let given = if path == local_ui::EVENTS.path {
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

/// Whether `path` is one of the local API's (the others are the web app's files).
pub(crate) fn is_api(path: &str) -> bool {
    path.strip_prefix(local_ui::PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The middleware applying [`check`] to every request.
pub(crate) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<Ui>>() {
        None => Err(ApiError::server_error("the local server is misconfigured")),
        Some(ui) => {
            let headers = req.headers();
            let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
            check(
                ui.port,
                &ui.secret,
                req.path(),
                text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
                text(header::ORIGIN),
                text(header::AUTHORIZATION),
                req.query_string(),
            )
        }
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
    fn secret_origin_and_host() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, new_secret());
        let host = Some("127.0.0.1:4000");
        let bearer = format!("Bearer {secret}");
        let ok = |path, origin, auth: Option<&str>, query| check(4000, &secret, path, host, origin, auth, query);
        assert!(ok("/", None, None, "").is_ok(), "static files need no secret");
        assert!(ok("/assets/x.js", Some("http://127.0.0.1:4000"), None, "").is_ok());
        assert!(ok("/api/session", None, Some(&bearer), "").is_ok());
        assert_eq!(
            ok("/api/session", None, None, "").err().map(|e| e.code),
            Some("bad_secret".into())
        );
        assert_eq!(
            ok("/api/session", None, Some("Bearer 00"), "").err().map(|e| e.code),
            Some("bad_secret".into())
        );
        assert_eq!(
            ok("/api/session", Some("http://evil.example"), Some(&bearer), "")
                .err()
                .map(|e| e.code),
            Some("bad_origin".into())
        );
        assert_eq!(
            ok("/", Some("http://localhost:4000"), None, "").err().map(|e| e.code),
            Some("bad_origin".into())
        );
        let query = format!("secret={secret}");
        assert!(ok("/api/events", None, None, &query).is_ok());
        assert!(ok("/api/events", None, None, "secret=nope").is_err());
        let rebound = check(
            4000,
            &secret,
            "/api/session",
            Some("evil.example:4000"),
            None,
            Some(&bearer),
            "",
        );
        assert_eq!(rebound.err().map(|e| e.code), Some("bad_origin".into()));
        assert!(check(4000, &secret, "/", None, None, None, "").is_err(), "no Host");
    }
}
