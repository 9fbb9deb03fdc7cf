//! The handlers of the local API (specs/local-ui-api.md), routed by the endpoints declared
//! in [`parley_specs::endpoints::local_ui`]. Each takes its typed request, calls the SDK
//! (holding the messenger only for the length of its calls: the receive loop waits
//! meanwhile) and answers with a typed body of [`api`](super::api).

mod contacts;
mod conversations;
mod key_backup;
mod second_factor;
mod session;

use actix_web::http;
use actix_web::{FromRequest, Handler, Responder, web};
use parley_sdk::messenger::Messenger;
use parley_specs::endpoints::{Endpoint, Method};
use parley_specs::{GroupId, UserId};
use tokio::sync::MutexGuard;

pub(crate) use self::session::unlock_with;
use super::error::ApiError;
use super::server::{Signed, Ui};

type Data = web::Data<Ui>;
/// A JSON answer of type `T`, or an error answer.
type Answer<T> = Result<web::Json<T>, ApiError>;

/// Routes each declared endpoint of the local API to its handler.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    use parley_specs::endpoints::local_ui::*;

    route(cfg, SESSION, session::session);
    route(cfg, REGISTER, session::register);
    route(cfg, LOGIN, session::login);
    route(cfg, UNLOCK, session::unlock);
    route(cfg, LOGOUT, session::logout);
    route(cfg, LIST_CONVERSATIONS, conversations::list);
    route(cfg, CREATE_CONVERSATION, conversations::create);
    route(cfg, GET_CONVERSATION, conversations::get);
    route(cfg, DELETE_CONVERSATION, conversations::leave);
    route(cfg, ADD_MEMBERS, conversations::add_members);
    route(cfg, REMOVE_MEMBER, conversations::remove_member);
    route(cfg, LEAVE, conversations::leave);
    route(cfg, UPDATE_SETTINGS, conversations::update_settings);
    route(cfg, SET_ADMIN, conversations::set_admin);
    route(cfg, LIST_MESSAGES, conversations::messages);
    route(cfg, SEND_MESSAGE, conversations::send);
    route(cfg, DELETE_MESSAGE, conversations::delete_message);
    route(cfg, EDIT_MESSAGE, conversations::edit_message);
    route(cfg, REACT, conversations::react);
    route(cfg, SEND_FILE, conversations::send_file);
    route(cfg, GET_FILE, conversations::get_file);
    route(cfg, SET_TIMER, conversations::set_timer);
    route(cfg, MARK_READ, conversations::mark_read);
    route(cfg, TYPING, conversations::typing);
    route(cfg, EXPORT, conversations::export);
    route(cfg, SEARCH, conversations::search);
    route(cfg, CONTACT, contacts::contact);
    route(cfg, VERIFY_CONTACT, contacts::verify);
    route(cfg, ACKNOWLEDGE_CONTACT, contacts::acknowledge);
    route(cfg, LIST_DEVICES, contacts::devices);
    route(cfg, DELETE_DEVICE, contacts::delete_device);
    route(cfg, PRESENCE, contacts::presence);
    route(cfg, SECOND_FACTOR, second_factor::state);
    route(cfg, ENROLL_SECOND_FACTOR, second_factor::enroll);
    route(cfg, CONFIRM_SECOND_FACTOR, second_factor::confirm);
    route(cfg, DISABLE_SECOND_FACTOR, second_factor::disable);
    route(cfg, BACKUP_STATUS, key_backup::status);
    route(cfg, ENABLE_BACKUP, key_backup::enable);
    route(cfg, DISABLE_BACKUP, key_backup::disable);
    route(cfg, RESTORE, key_backup::restore);
    route(cfg, EVENTS, super::events::stream);
}

/// The answer to a path in the API's scope that names no endpoint.
pub(crate) async fn unknown() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("No such API endpoint."))
}

/// Serves `endpoint` (its path template is actix's `{name}` syntax too) with `handler`,
/// inside the API's scope (whose prefix the scope matches).
fn route<F, Args>(cfg: &mut web::ServiceConfig, endpoint: Endpoint, handler: F)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let method = match endpoint.method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
    };
    let path = endpoint
        .path
        .strip_prefix(parley_specs::endpoints::local_ui::PREFIX)
        .unwrap_or(endpoint.path);
    cfg.route(path, web::method(method).to(handler));
}

/// The messenger, or why there is none.
fn messenger<'a>(state: &'a mut MutexGuard<'_, Signed>) -> Result<&'a mut Messenger, ApiError> {
    let has_session = state.session.is_some();
    match state.messenger.as_mut() {
        Some(m) => Ok(m),
        None if has_session => Err(ApiError::locked()),
        None => Err(ApiError::not_signed_in()),
    }
}

/// The `{group_id}` of a path.
fn group(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(raw).map_err(|e| ApiError::invalid_input(format!("Invalid conversation id: {e}")))
}

/// `bob@server`, or `bob` on this user's server.
fn user(me: &UserId, raw: &str) -> Result<UserId, ApiError> {
    let raw = raw.trim();
    let full = if raw.contains('@') {
        raw.to_owned()
    } else {
        format!("{raw}@{}", me.server_name())
    };
    UserId::parse(&full).map_err(|e| ApiError::invalid_input(format!("Invalid user \"{raw}\": {e}")))
}
