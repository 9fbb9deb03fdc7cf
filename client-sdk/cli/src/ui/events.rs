//! Real-time events: the broadcaster, the receive loop turning the SDK's events into the
//! document's `{"event": …}` frames, and the `/api/events` WebSocket that pushes them.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use parley_sdk::Error;
use parley_sdk::messenger::{Event, Messenger, MessengerError, Presence};
use parley_specs::ErrorCode;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::delivery::Deliveries;
use super::server::Ui;
use super::views;

/// How long one receive holds the messenger.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);
/// Longest pause after a failed receive.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Fans events out to every connected event stream.
pub(crate) struct Hub {
    sender: broadcast::Sender<String>,
    clients: AtomicUsize,
    /// The last `connection` state sent: ("online" | "unreachable", message).
    connection: StdMutex<(String, Option<String>)>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            clients: AtomicUsize::new(0),
            connection: StdMutex::new(("online".to_owned(), None)),
        }
    }

    /// Sends one event to every stream (none connected is fine).
    pub(crate) fn send(&self, event: Value) {
        let _ = self.sender.send(event.to_string());
    }

    /// The `connection` event, sent when the state changes.
    pub(crate) fn connection(&self, online: bool, message: Option<String>) {
        let state = if online { "online" } else { "unreachable" };
        let changed = match self.connection.lock() {
            Ok(mut last) => {
                let changed = last.0 != state || (!online && last.1 != message);
                *last = (state.to_owned(), message.clone());
                changed
            }
            Err(_) => true,
        };
        if changed {
            self.send(connection_event(state, message.as_deref()));
        }
    }

    fn current_connection(&self) -> Value {
        match self.connection.lock() {
            Ok(last) => connection_event(&last.0, last.1.as_deref()),
            Err(_) => connection_event("online", None),
        }
    }
}

fn connection_event(state: &str, message: Option<&str>) -> Value {
    match message {
        Some(message) => json!({"event": "connection", "state": state, "message": message}),
        None => json!({"event": "connection", "state": state}),
    }
}

/// The document's events for the SDK's `events` (the messenger is needed to describe
/// conversations).
pub(crate) async fn translate(m: &mut Messenger, events: Vec<Event>, deliveries: &Deliveries) -> Vec<Value> {
    let me = m.user_id().clone();
    let mut out = Vec::new();
    let mut conversations_changed = Vec::new();
    for event in events {
        match event {
            Event::Message { group_id, message } => {
                let others = views::other_devices(m, &group_id).await;
                if message.sender == me {
                    deliveries.own_message(&group_id, message.seq);
                }
                let positions = deliveries.positions(&group_id);
                out.push(json!({"event": "message", "group_id": group_id,
                                "message": views::message(&me, &message, others, &positions)}));
            }
            Event::Joined { group_id, .. }
            | Event::MembersChanged { group_id, .. }
            | Event::Removed { group_id, .. } => {
                if !conversations_changed.contains(&group_id) {
                    conversations_changed.push(group_id);
                }
            }
            Event::Delivered { group_id, seq, to } => {
                out.push(json!({"event": "delivered", "group_id": group_id, "seq": seq, "to": to}));
            }
            Event::VerifiedContactChanged { user, added, removed } => {
                out.push(json!({"event": "verified_contact_changed", "user_id": user,
                                "added": added, "removed": removed}));
            }
            Event::Typing { group_id, user, typing } => {
                out.push(json!({"event": "typing", "group_id": group_id, "user_id": user, "typing": typing}));
            }
            Event::Presence { user, presence } => {
                out.push(json!({"event": "presence", "user_id": user, "presence": presence}));
            }
            Event::Expired { group_id, seq } => {
                out.push(json!({"event": "message_deleted", "group_id": group_id, "seq": seq}));
            }
            Event::LeaveAnnounced { .. } | Event::Undecryptable { .. } => {}
        }
    }
    for group_id in conversations_changed {
        if let Ok(conversation) = views::conversation(m, &group_id, deliveries).await {
            out.push(json!({"event": "conversation", "conversation": conversation}));
        }
    }
    out
}

/// Receives for as long as the process runs: while signed in, `receive` in short turns
/// (the messenger is held only during one), events translated and broadcast.
pub(crate) async fn receive_loop(ui: web::Data<Ui>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = {
            let mut state = ui.state.lock().await;
            match state.messenger.as_mut() {
                None => None,
                Some(m) => Some(match m.receive(RECEIVE_WAIT).await {
                    Ok(events) => Ok((translate(m, events, &ui.deliveries).await, m.client().clone())),
                    Err(e) => Err(e),
                }),
            }
        };
        match outcome {
            None => tokio::time::sleep(Duration::from_millis(200)).await,
            Some(Ok((events, client))) => {
                backoff = Duration::from_millis(500);
                ui.hub.connection(true, None);
                for event in events {
                    ui.hub.send(event);
                }
                let to_streams = ui.clone();
                ui.deliveries.refresh(&client, move |event| to_streams.hub.send(event));
                // Let waiting API calls take the messenger.
                tokio::task::yield_now().await;
            }
            Some(Err(err)) => {
                ui.hub.connection(false, Some(plain(&err)));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The receive error in words for people.
fn plain(err: &MessengerError) -> String {
    match err {
        MessengerError::Api(Error::Transport { .. }) => "The homeserver cannot be reached; retrying.".to_owned(),
        MessengerError::Api(e) if matches!(e.code(), Some(ErrorCode::UnknownToken | ErrorCode::MissingToken)) => {
            "This device was signed out at the homeserver (removed from another device?); sign in again.".to_owned()
        }
        other => other.to_string(),
    }
}

/// `GET /api/events?secret=…`: the event WebSocket (the secret is checked by the guard).
pub(crate) async fn stream(
    req: HttpRequest,
    body: web::Payload,
    ui: web::Data<Ui>,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, mut incoming) = actix_ws::handle(&req, body)?;
    let mut events = ui.hub.sender.subscribe();
    let first = ui.hub.clients.fetch_add(1, Ordering::SeqCst) == 0;
    if first {
        announce(ui.clone(), Presence::Online);
    }
    actix_web::rt::spawn(async move {
        let hello = ui.hub.current_connection().to_string();
        if session.text(hello).await.is_ok() {
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(text) => if session.text(text).await.is_err() { break },
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    message = incoming.recv() => match message {
                        Some(Ok(actix_ws::Message::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() { break }
                        }
                        Some(Ok(actix_ws::Message::Close(_)) | Err(_)) | None => break,
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
        let _ = session.close(None).await;
        if ui.hub.clients.fetch_sub(1, Ordering::SeqCst) == 1 {
            announce(ui.clone(), Presence::Away);
        }
    });
    Ok(response)
}

/// Sends this user's presence to every conversation, in the background (best effort).
fn announce(ui: web::Data<Ui>, presence: Presence) {
    actix_web::rt::spawn(async move {
        let mut state = ui.state.lock().await;
        if let Some(m) = state.messenger.as_mut() {
            let _ = m.send_presence(presence).await;
        }
    });
}
