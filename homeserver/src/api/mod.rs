//! The client API, served to devices: handlers take an `AuthedDevice` and typed input,
//! call the domain (accounts, devices, hub, inbox, key packages) and map its answer.

mod account;
mod auth;
mod devices;
mod files;
mod groups;
mod key_backup;
mod keys;
mod ops;
mod second_factor;
mod stream;
mod transparency;

use actix_web::{HttpResponse, ResponseError, web};
use parley_specs::ErrorCode;
use parley_specs::endpoints::{client, ops as ops_endpoints};

use crate::error::ApiError;
use crate::routes::Routes;

/// All routes of the client listener.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Requests are matched against the routes in this order, each template with a
    // path parameter by a regular expression: the message path comes first.
    let routes = Routes::default()
        .add(client::SUBMIT_MESSAGE, groups::message)
        .add(client::ACK_INBOX, groups::ack_inbox)
        .add(client::READ_INBOX, groups::read_inbox)
        .add(client::INBOX_STREAM, stream::inbox_stream)
        .add(client::SUBMIT_COMMIT, groups::commit)
        .add(client::REGISTER, account::register)
        .add(client::LOGIN, account::login)
        .add(client::LOGOUT, account::logout)
        .add(client::LOGOUT_ALL, account::logout_all)
        .add(client::WHOAMI, account::whoami)
        .add(client::CHANGE_PASSWORD, account::change_password)
        .add(client::SECOND_FACTOR_STATUS, second_factor::status)
        .add(client::SECOND_FACTOR_ENROLL, second_factor::enroll)
        .add(client::SECOND_FACTOR_CONFIRM, second_factor::confirm)
        .add(client::SECOND_FACTOR_DISABLE, second_factor::disable)
        .add(client::LIST_DEVICES, devices::list)
        .add(client::RENAME_DEVICE, devices::rename)
        .add(client::DELETE_DEVICE, devices::delete)
        .add(client::UPLOAD_KEY_PACKAGES, keys::upload)
        .add(client::KEY_PACKAGE_COUNT, keys::count)
        .add(client::CLAIM_KEY_PACKAGES, keys::claim)
        .add(client::USER_DEVICES, devices::of_user)
        .add(client::TRANSPARENCY_HISTORY, transparency::history)
        .add(client::CREATE_GROUP, groups::create)
        .add(client::LIST_GROUPS, groups::list)
        .add(client::GET_GROUP, groups::get)
        .add(client::LEAVE_GROUP, groups::leave)
        .add(client::GROUP_DELIVERY, groups::delivery)
        .add(client::GROUP_INFO, groups::group_info)
        .add(client::CREATE_UPLOAD, files::create)
        .add(client::GET_UPLOAD, files::get)
        .add(client::PUT_UPLOAD, files::put)
        .add(client::COMPLETE_UPLOAD, files::complete)
        .add(client::DELETE_UPLOAD, files::delete)
        .add(client::DOWNLOAD_BLOB, files::download)
        .add(client::LIST_BACKUP_CHUNKS, key_backup::list)
        .add(client::PUT_BACKUP_CHUNK, key_backup::put)
        .add(client::GET_BACKUP_CHUNK, key_backup::get)
        .add(client::DELETE_BACKUP, key_backup::delete)
        .add(ops_endpoints::HEALTH, ops::health)
        .add(ops_endpoints::READY, ops::ready)
        .add(ops_endpoints::METRICS, ops::metrics)
        .add(ops_endpoints::WELL_KNOWN_SERVER, ops::well_known_server);
    routes.register(cfg);
}

pub async fn unrecognized_endpoint() -> HttpResponse {
    ApiError::new(
        ErrorCode::UnrecognizedEndpoint,
        "no endpoint has this path; see specs/openapi/client-api.yaml",
    )
    .error_response()
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
