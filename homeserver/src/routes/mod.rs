//! What the three HTTP APIs (client, federation, admin) share: route tables built from
//! the endpoint declarations in `parley_specs`, so a path or method cannot differ between
//! server, SDK and OpenAPI document; extractor settings that answer malformed input in
//! the API's error format; request metrics; and parsing of path values.

mod client_addr;
mod extract;
mod observe;

pub use client_addr::ClientAddr;
pub use extract::{json_config, path_config, query_config};
pub use observe::observe;

use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, ResponseError, web};
use parley_specs::endpoints::{Endpoint, Method};
use parley_specs::{ErrorCode, GroupId, UserId};

use crate::error::ApiError;

/// One actix resource per path, holding a route per declared method; any other
/// method on that path answers 405 in the API's error format, with an `Allow` header
/// listing the path's methods (RFC 9110 §15.5.6).
#[derive(Default)]
pub struct Routes {
    resources: Vec<(&'static str, Vec<Method>, Resource)>,
}

impl Routes {
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (_, methods, resource) in self.resources {
            let allow = methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
            cfg.service(resource.default_service(web::to(move || method_not_allowed(allow.clone()))));
        }
    }

    pub fn add<F, Args>(mut self, endpoint: Endpoint, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let index = match self.resources.iter().position(|(path, _, _)| *path == endpoint.path) {
            Some(index) => index,
            None => {
                let resource = web::resource(endpoint.path).app_data(RoutePattern(endpoint.path));
                self.resources.push((endpoint.path, Vec::new(), resource));
                self.resources.len() - 1
            }
        };
        let (path, mut methods, resource) = self.resources.remove(index);
        let route = web::method(actix_method(endpoint.method)).to(handler);
        methods.push(endpoint.method);
        self.resources.insert(index, (path, methods, resource.route(route)));
        self
    }
}

/// The declared path template of the resource that matched a request, for metrics and
/// logs; reading it costs nothing, where asking actix re-matches every route.
#[derive(Clone, Copy)]
pub struct RoutePattern(pub &'static str);

fn actix_method(method: Method) -> actix_web::http::Method {
    match method {
        Method::Get => actix_web::http::Method::GET,
        Method::Post => actix_web::http::Method::POST,
        Method::Put => actix_web::http::Method::PUT,
        Method::Delete => actix_web::http::Method::DELETE,
    }
}

async fn method_not_allowed(allow: String) -> HttpResponse {
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("this endpoint accepts only {allow}"),
    )
    .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// A group id from a path, for the client and federation APIs alike.
pub fn parse_group_id(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
}

/// A user id from a path (`400 invalid_param` if malformed).
pub fn parse_user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
}
