//! The handlers of the local API (specs/local-ui-api.md). Each takes the messenger for
//! the length of its SDK calls; the receive loop waits meanwhile.

use std::time::Duration;

use actix_web::http::{self, header};
use actix_web::{FromRequest, Handler, HttpResponse, Responder, web};
use parley_sdk::messenger::{ExportFormat, Messenger, MessengerError, Presence};
use parley_sdk::{Error, ServerCa};
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use parley_specs::endpoints::{Endpoint, Method};
use parley_specs::{DeviceId, ErrorCode, GroupId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::MutexGuard;

use super::error::ApiError;
use super::server::{Signed, Ui};
use super::{events, views};

type Res = Result<HttpResponse, ApiError>;
type Data = web::Data<Ui>;

/// Shortest passphrase for a new store made from the web app.
const MIN_NEW_PASSPHRASE_CHARS: usize = 12;
/// Longest disappearing-message timer: a year.
const MAX_TIMER_SECS: u64 = 366 * 86_400;

/// Routes each declared endpoint of the local API to its handler.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    use parley_specs::endpoints::local_ui::*;

    route(cfg, SESSION, session);
    route(cfg, REGISTER, register);
    route(cfg, LOGIN, login);
    route(cfg, UNLOCK, unlock);
    route(cfg, LOGOUT, logout);
    route(cfg, LIST_CONVERSATIONS, list_conversations);
    route(cfg, CREATE_CONVERSATION, create_conversation);
    route(cfg, GET_CONVERSATION, get_conversation);
    route(cfg, DELETE_CONVERSATION, delete_conversation);
    route(cfg, ADD_MEMBERS, add_members);
    route(cfg, REMOVE_MEMBER, remove_member);
    route(cfg, LEAVE, leave);
    route(cfg, LIST_MESSAGES, messages);
    route(cfg, SEND_MESSAGE, send);
    route(cfg, DELETE_MESSAGE, delete_message);
    route(cfg, SET_TIMER, set_timer);
    route(cfg, MARK_READ, mark_read);
    route(cfg, TYPING, typing);
    route(cfg, EXPORT, export);
    route(cfg, SEARCH, search);
    route(cfg, CONTACT, contact);
    route(cfg, VERIFY_CONTACT, verify);
    route(cfg, ACKNOWLEDGE_CONTACT, acknowledge);
    route(cfg, LIST_DEVICES, devices);
    route(cfg, DELETE_DEVICE, delete_device);
    route(cfg, PRESENCE, presence);
    route(cfg, EVENTS, events::stream);
}

/// Serves `endpoint` (its path templates are actix's `{name}` syntax too) with `handler`.
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
    cfg.route(endpoint.path, web::method(method).to(handler));
}

fn ok(value: impl serde::Serialize) -> Res {
    Ok(HttpResponse::Ok().json(value))
}

fn empty() -> Res {
    ok(json!({}))
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

fn session_view(state: &Signed) -> Value {
    match &state.session {
        None => json!({"signed_in": false, "locked": false}),
        Some(s) => json!({
            "signed_in": state.messenger.is_some(),
            "locked": state.messenger.is_none(),
            "user_id": s.user_id,
            "device_id": s.device_id,
            "server": s.server.as_str().trim_end_matches('/'),
        }),
    }
}

async fn session(ui: Data) -> Res {
    ok(session_view(&*ui.state.lock().await))
}

#[derive(Deserialize)]
struct SignIn {
    server: String,
    username: String,
    password: String,
    passphrase: String,
    #[serde(default)]
    ca_pem: Option<String>,
    #[serde(default)]
    device_name: Option<String>,
    #[serde(default)]
    invite_token: Option<String>,
}

async fn register(ui: Data, body: web::Json<SignIn>) -> Res {
    sign_in(ui, body.into_inner(), true).await
}

async fn login(ui: Data, body: web::Json<SignIn>) -> Res {
    sign_in(ui, body.into_inner(), false).await
}

async fn sign_in(ui: Data, body: SignIn, register: bool) -> Res {
    let mut state = ui.state.lock().await;
    if let Some(s) = &state.session {
        return Err(ApiError::not_allowed(format!(
            "This profile is signed in as {} already; sign out first{}.",
            s.user_id,
            if state.messenger.is_none() { " or unlock it" } else { "" }
        )));
    }
    let server: url::Url = body
        .server
        .trim()
        .parse()
        .map_err(|e| ApiError::invalid_input(format!("Invalid server address: {e}")))?;
    let store = ui.profile.messenger_store();
    if !Messenger::store_exists(&store) && body.passphrase.chars().count() < MIN_NEW_PASSPHRASE_CHARS {
        return Err(ApiError::invalid_input(format!(
            "Choose a passphrase of at least {MIN_NEW_PASSPHRASE_CHARS} characters: it protects your keys and \
             messages on this computer."
        )));
    }
    let ca = match body.ca_pem.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(pem) => ServerCa::Pem(pem.to_owned()),
        None => ServerCa::SystemRoots,
    };
    let sign_in = ui.profile.sign_in(server, ca)?;
    let username = body.username.trim().to_owned();
    let device_name = body.device_name.clone().or_else(|| Some("Parley web app".to_owned()));
    let session = if register {
        sign_in
            .register(&RegisterRequest {
                username,
                password: body.password.clone(),
                device_name,
                invite_token: body.invite_token.clone(),
            })
            .await?
    } else {
        sign_in
            .login(&LoginRequest {
                username,
                password: body.password.clone(),
                device_name,
            })
            .await?
    };
    state.session = Some(session);
    open_store(&ui, &mut state, &body.passphrase).await?;
    ok(session_view(&state))
}

#[derive(Deserialize)]
struct Unlock {
    passphrase: String,
}

async fn unlock(ui: Data, body: web::Json<Unlock>) -> Res {
    unlock_with(&ui, &body.passphrase).await?;
    ok(session_view(&*ui.state.lock().await))
}

/// Opens the profile's store with `passphrase` (the session must be known).
pub(crate) async fn unlock_with(ui: &Ui, passphrase: &str) -> Result<(), ApiError> {
    let mut state = ui.state.lock().await;
    if state.messenger.is_some() {
        return Ok(());
    }
    if state.session.is_none() {
        return Err(ApiError::not_signed_in());
    }
    open_store(ui, &mut state, passphrase).await
}

/// Opens (or creates) the store for the session, then the first sync.
async fn open_store(ui: &Ui, state: &mut MutexGuard<'_, Signed>, passphrase: &str) -> Result<(), ApiError> {
    let Some(session) = state.session.clone() else {
        return Err(ApiError::not_signed_in());
    };
    let path = ui.profile.messenger_store();
    let open = |client| {
        Messenger::open(
            client,
            session.user_id.clone(),
            session.device_id.clone(),
            &path,
            passphrase,
        )
    };
    let mut messenger = match open(session.client()?).await {
        Err(MessengerError::StoreOfAnotherDevice { store_device, .. }) => {
            // A store left by an earlier device of this profile: kept aside, not deleted.
            let aside = path.with_extension(format!("sealed.{store_device}"));
            std::fs::rename(&path, &aside)
                .map_err(|e| ApiError::server_error(format!("cannot move the old store aside: {e}")))?;
            open(session.client()?).await?
        }
        other => other?,
    };
    ui.hub.send(json!({"event": "sync", "state": "syncing"}));
    match messenger.sync().await {
        Ok(events) => {
            ui.hub.connection(true, None);
            for event in events::translate(&mut messenger, events, &ui.deliveries).await {
                ui.hub.send(event);
            }
        }
        Err(MessengerError::Api(Error::Transport { .. })) => {
            ui.hub
                .connection(false, Some("The homeserver cannot be reached; retrying.".to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    ui.hub.send(json!({"event": "sync", "state": "idle"}));
    state.messenger = Some(messenger);
    Ok(())
}

async fn logout(ui: Data) -> Res {
    let mut state = ui.state.lock().await;
    let Some(session) = state.session.clone() else {
        return Err(ApiError::not_signed_in());
    };
    match session.client()?.logout().await {
        Ok(()) => {}
        Err(e) if matches!(e.code(), Some(ErrorCode::UnknownToken | ErrorCode::MissingToken)) => {}
        Err(e) => return Err(e.into()),
    }
    forget(&ui, &mut state)?;
    empty()
}

fn forget(ui: &Ui, state: &mut Signed) -> Result<(), ApiError> {
    ui.profile.forget()?;
    state.messenger = None;
    state.session = None;
    Ok(())
}

async fn list_conversations(ui: Data) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    ok(views::conversations(m, None, &ui.deliveries).await?)
}

#[derive(Deserialize)]
struct Create {
    #[serde(default)]
    members: Vec<String>,
}

async fn create_conversation(ui: Data, body: web::Json<Create>) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let users = body
        .members
        .iter()
        .map(|u| user(m.user_id(), u))
        .collect::<Result<Vec<_>, _>>()?;
    let group_id = m.create_group().await?;
    if !users.is_empty() {
        m.add_members(&group_id, &users).await?;
    }
    conversation_reply(&ui, m, &group_id).await
}

/// The conversation as the answer, also pushed to the event streams.
async fn conversation_reply(ui: &Ui, m: &mut Messenger, group_id: &GroupId) -> Res {
    let conversation = views::conversation(m, group_id, &ui.deliveries).await?;
    ui.hub
        .send(json!({"event": "conversation", "conversation": conversation}));
    ok(conversation)
}

async fn get_conversation(ui: Data, path: web::Path<String>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    ok(views::conversation(m, &group_id, &ui.deliveries).await?)
}

async fn delete_conversation(ui: Data, path: web::Path<String>) -> Res {
    leave(ui, path).await
}

async fn leave(ui: Data, path: web::Path<String>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.leave_group(&group_id).await?;
    ui.deliveries.forget(&group_id);
    empty()
}

#[derive(Deserialize)]
struct Users {
    users: Vec<String>,
}

async fn add_members(ui: Data, path: web::Path<String>, body: web::Json<Users>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let users = body
        .users
        .iter()
        .map(|u| user(m.user_id(), u))
        .collect::<Result<Vec<_>, _>>()?;
    if users.is_empty() {
        return Err(ApiError::invalid_input("Name at least one user to add."));
    }
    m.add_members(&group_id, &users).await?;
    conversation_reply(&ui, m, &group_id).await
}

async fn remove_member(ui: Data, path: web::Path<(String, String)>) -> Res {
    let (raw_group, raw_user) = path.into_inner();
    let group_id = group(&raw_group)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let target = user(m.user_id(), &raw_user)?;
    m.remove_members(&group_id, &[target]).await?;
    conversation_reply(&ui, m, &group_id).await
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

async fn messages(ui: Data, path: web::Path<String>, query: web::Query<Search>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    let history = m.history(&group_id, search).await?;
    let others = views::other_devices(m, &group_id).await;
    let me = m.user_id().clone();
    // One request per listing: how far each member server has received the conversation
    // (the last known positions when the homeserver cannot say).
    if let Ok(answer) = m.client().group_delivery(&group_id).await {
        ui.deliveries.record(answer);
    }
    let positions = ui.deliveries.positions(&group_id);
    if let Some(own) = history.iter().rev().find(|msg| msg.sender == me) {
        ui.deliveries.own_message(&group_id, own.seq);
    }
    ok(history
        .iter()
        .map(|msg| views::message(&me, msg, others, &positions))
        .collect::<Vec<_>>())
}

#[derive(Deserialize)]
struct Text {
    text: String,
}

async fn send(ui: Data, path: web::Path<String>, body: web::Json<Text>) -> Res {
    let group_id = group(&path)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_input("The message is empty."));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let sent = m.send_text(&group_id, &body.text, None).await?;
    let history = m.history(&group_id, None).await?;
    let others = views::other_devices(m, &group_id).await;
    let me = m.user_id().clone();
    ui.deliveries.own_message(&group_id, sent.seq);
    let positions = ui.deliveries.positions(&group_id);
    let message = match history.iter().find(|msg| msg.seq == sent.seq) {
        Some(msg) => views::message(&me, msg, others, &positions),
        None => {
            return Err(ApiError::server_error(
                "the message was sent but is missing from the history",
            ));
        }
    };
    ui.hub
        .send(json!({"event": "message", "group_id": group_id, "message": message}));
    ok(message)
}

async fn delete_message(ui: Data, path: web::Path<(String, i64)>) -> Res {
    let (raw_group, seq) = path.into_inner();
    let group_id = group(&raw_group)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.delete_message(&group_id, seq).await?;
    ui.hub
        .send(json!({"event": "message_deleted", "group_id": group_id, "seq": seq}));
    empty()
}

#[derive(Deserialize)]
struct Timer {
    timer_secs: Option<u64>,
}

async fn set_timer(ui: Data, path: web::Path<String>, body: web::Json<Timer>) -> Res {
    let group_id = group(&path)?;
    if body.timer_secs.is_some_and(|s| s == 0 || s > MAX_TIMER_SECS) {
        return Err(ApiError::invalid_input(
            "The timer must be between 1 second and a year, or null for none.",
        ));
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.set_timer(&group_id, body.timer_secs.map(Duration::from_secs)).await?;
    conversation_reply(&ui, m, &group_id).await
}

#[derive(Deserialize)]
struct Read {
    up_to: i64,
}

async fn mark_read(ui: Data, path: web::Path<String>, body: web::Json<Read>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.mark_read(&group_id, body.up_to).await?;
    empty()
}

#[derive(Deserialize)]
struct Typing {
    typing: bool,
}

async fn typing(ui: Data, path: web::Path<String>, body: web::Json<Typing>) -> Res {
    let group_id = group(&path)?;
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.send_typing(&group_id, body.typing).await?;
    empty()
}

#[derive(Deserialize)]
struct Format {
    #[serde(default)]
    format: Option<String>,
}

async fn export(ui: Data, path: web::Path<String>, query: web::Query<Format>) -> Res {
    let group_id = group(&path)?;
    let (format, kind, ext) = match query.format.as_deref() {
        None | Some("text") => (ExportFormat::Text, "text/plain; charset=utf-8", "txt"),
        Some("json") => (ExportFormat::Json, "application/json", "json"),
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "Unknown export format \"{other}\": use text or json."
            )));
        }
    };
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let exported = m.export(&group_id, format).await?;
    let name: String = group_id
        .as_str()
        .split('@')
        .next()
        .unwrap_or("conversation")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, kind))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"parley-{name}.{ext}\""),
        ))
        .body(exported))
}

async fn search(ui: Data, query: web::Query<Search>) -> Res {
    let word = query.q.as_deref().or(query.search.as_deref()).unwrap_or("").trim();
    if word.is_empty() {
        return ok(Vec::<Value>::new());
    }
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let found = m.search(word).await?;
    let me = m.user_id().clone();
    let mut devices = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for (group_id, msg) in found {
        if !devices.contains_key(&group_id) {
            let n = views::other_devices(m, &group_id).await;
            devices.insert(group_id.clone(), n);
        }
        let others = devices.get(&group_id).copied().unwrap_or(0);
        let positions = ui.deliveries.positions(&group_id);
        out.push(json!({"group_id": group_id, "message": views::message(&me, &msg, others, &positions)}));
    }
    ok(out)
}

async fn contact(ui: Data, path: web::Path<String>) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    ok(views::contact(&m.safety_number(&contact).await?))
}

async fn verify(ui: Data, path: web::Path<String>) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    ok(views::contact(&m.mark_verified(&contact).await?))
}

async fn acknowledge(ui: Data, path: web::Path<String>) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let contact = user(m.user_id(), &path)?;
    m.acknowledge_change(&contact).await?;
    ok(views::contact(&m.safety_number(&contact).await?))
}

async fn devices(ui: Data) -> Res {
    let session = {
        let state = ui.state.lock().await;
        state.session.clone().ok_or_else(ApiError::not_signed_in)?
    };
    let list = session.client()?.devices().await?;
    let devices: Vec<Value> = list
        .devices
        .iter()
        .map(|d| {
            json!({
                "device_id": d.device_id,
                "display_name": d.display_name,
                "this_device": d.device_id == session.device_id,
                "last_seen_at": views::rfc3339(d.last_seen_at),
            })
        })
        .collect();
    ok(devices)
}

async fn delete_device(ui: Data, path: web::Path<String>) -> Res {
    let device_id = DeviceId::parse(&path).map_err(|e| ApiError::invalid_input(format!("Invalid device id: {e}")))?;
    let mut state = ui.state.lock().await;
    let session = state.session.clone().ok_or_else(ApiError::not_signed_in)?;
    session.client()?.delete_device(&device_id).await?;
    if device_id == session.device_id {
        forget(&ui, &mut state)?;
    }
    empty()
}

#[derive(Deserialize)]
struct PresenceBody {
    presence: Presence,
}

async fn presence(ui: Data, body: web::Json<PresenceBody>) -> Res {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.send_presence(body.presence).await?;
    empty()
}
