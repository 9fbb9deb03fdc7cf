//! HTTP surface: routes are built from the endpoint declarations in `parley_specs`,
//! so a path or method cannot differ between server, SDK and OpenAPI document.

mod account;
mod devices;
mod extract;
mod groups;
mod keys;
mod observe;
mod ops;
mod stream;

use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, ResponseError, web};
use parley_specs::endpoints::{Endpoint, Method, client, ops as ops_endpoints};
use parley_specs::{ErrorCode, GroupId};

use crate::error::ApiError;

pub use extract::{json_config, path_config, query_config};
pub use observe::observe;

/// All routes of the client listener.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let routes = Routes::default()
        .add(client::REGISTER, account::register)
        .add(client::LOGIN, account::login)
        .add(client::LOGOUT, account::logout)
        .add(client::LOGOUT_ALL, account::logout_all)
        .add(client::WHOAMI, account::whoami)
        .add(client::CHANGE_PASSWORD, account::change_password)
        .add(client::LIST_DEVICES, devices::list)
        .add(client::RENAME_DEVICE, devices::rename)
        .add(client::DELETE_DEVICE, devices::delete)
        .add(client::UPLOAD_KEY_PACKAGES, keys::upload)
        .add(client::KEY_PACKAGE_COUNT, keys::count)
        .add(client::CLAIM_KEY_PACKAGES, keys::claim)
        .add(client::CREATE_GROUP, groups::create)
        .add(client::LIST_GROUPS, groups::list)
        .add(client::GET_GROUP, groups::get)
        .add(client::SUBMIT_COMMIT, groups::commit)
        .add(client::SUBMIT_MESSAGE, groups::message)
        .add(client::GROUP_DELIVERY, groups::delivery)
        .add(client::READ_INBOX, groups::read_inbox)
        .add(client::ACK_INBOX, groups::ack_inbox)
        .add(client::INBOX_STREAM, stream::inbox_stream)
        .add(ops_endpoints::HEALTH, ops::health)
        .add(ops_endpoints::READY, ops::ready)
        .add(ops_endpoints::METRICS, ops::metrics)
        .add(ops_endpoints::WELL_KNOWN_SERVER, ops::well_known_server);
    routes.register(cfg);
}

/// One actix resource per path, holding a route per declared method; any other
/// method on that path answers 405 in the API's error format.
#[derive(Default)]
pub(crate) struct Routes {
    resources: Vec<(&'static str, Resource)>,
}

impl Routes {
    pub(crate) fn register(self, cfg: &mut web::ServiceConfig) {
        for (_, resource) in self.resources {
            cfg.service(resource);
        }
    }

    pub(crate) fn add<F, Args>(mut self, endpoint: Endpoint, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let index = match self.resources.iter().position(|(path, _)| *path == endpoint.path) {
            Some(index) => index,
            None => {
                let resource = web::resource(endpoint.path).default_service(web::to(method_not_allowed));
                self.resources.push((endpoint.path, resource));
                self.resources.len() - 1
            }
        };
        let (path, resource) = self.resources.remove(index);
        let route = web::method(actix_method(endpoint.method)).to(handler);
        self.resources.insert(index, (path, resource.route(route)));
        self
    }
}

fn actix_method(method: Method) -> actix_web::http::Method {
    match method {
        Method::Get => actix_web::http::Method::GET,
        Method::Post => actix_web::http::Method::POST,
        Method::Put => actix_web::http::Method::PUT,
        Method::Delete => actix_web::http::Method::DELETE,
    }
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that HTTP method",
    )
    .error_response()
}

pub async fn unrecognized_endpoint() -> HttpResponse {
    ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/client-api.yaml",
    )
    .error_response()
}

/// A group id from a path, for the client and federation APIs alike.
pub(crate) fn parse_group_id(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
