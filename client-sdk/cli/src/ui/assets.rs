//! The web app, embedded at build time (see `client-sdk/cli/build.rs`): `/` and unknown
//! non-API paths serve `index.html` (the app routes in the browser), `/assets/…` the
//! Vite build's hashed files with a long cache lifetime.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _};

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The embedded file at `path` (without the leading `/`), and its content type.
pub(crate) fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, bytes, kind)| (*bytes, *kind))
}

/// Serves static files; anything else outside `/api` gets `index.html`. A path that reads
/// as the API's however it is decoded gets the API's answer for an unknown path: what the
/// router did not send to the API is not served as a page either.
pub(crate) async fn serve(req: HttpRequest) -> HttpResponse {
    if super::auth::reads_as_api(req.path()) {
        return super::error::ApiError::not_found("No such API endpoint.").error_response();
    }
    let path = req.path().trim_start_matches('/');
    if !path.is_empty()
        && path != "index.html"
        && let Some((bytes, kind)) = find(path)
    {
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-store"
        };
        return HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, kind))
            .insert_header((header::CACHE_CONTROL, cache))
            .body(bytes);
    }
    if path.starts_with("assets/") {
        return HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body("not found");
    }
    match find("index.html") {
        Some((bytes, kind)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, kind))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(bytes),
        None => HttpResponse::NotFound().body("the web app is missing from this build"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_always_embedded() {
        let (bytes, kind) = find("index.html").unwrap_or((b"", ""));
        assert!(!bytes.is_empty());
        assert!(kind.starts_with("text/html"));
    }
}
