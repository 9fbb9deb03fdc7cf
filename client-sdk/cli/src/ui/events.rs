//! Real-time events: the broadcaster, the receive loop turning the SDK's events into the
//! document's `{"event": …}` frames, and the `/api/events` WebSocket that pushes them.

use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use parley_sdk::Error;
use parley_sdk::messenger::{Event, LeafSource, Messenger, MessengerError, Presence};
use parley_specs::ErrorCode;
use tokio::sync::broadcast;

use super::api::{ConnectionState, ContactDevice, RefusedLeafView, ServerEvent};
use super::delivery::Deliveries;
use super::server::Ui;
use super::views;
use crate::messaging_output::{event_text, leaf_refused_warning};

/// How long one receive holds the messenger.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);
/// How often the key backup (when on) uploads what changed.
const BACKUP_EVERY: Duration = Duration::from_secs(60);
/// Longest pause after a failed receive.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Fans events out to every connected event stream.
pub(crate) struct Hub {
    /// Each event as the JSON text of its frame.
    sender: broadcast::Sender<String>,
    clients: AtomicUsize,
    /// The last `connection` event sent.
    connection: StdMutex<ServerEvent>,
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
            clients: AtomicUsize::new(0),
            connection: StdMutex::new(connection_event(true, None)),
        }
    }

    /// Sends one event to every stream (none connected is fine).
    pub(crate) fn send(&self, event: &ServerEvent) {
        let _ = self.sender.send(frame(event));
    }

    /// The `connection` event, sent when the state changes.
    pub(crate) fn connection(&self, online: bool, message: Option<String>) {
        let event = connection_event(online, message);
        let changed = match self.connection.lock() {
            Ok(mut last) => {
                let changed = !same_connection(&last, &event);
                *last = event.clone();
                changed
            }
            Err(_) => true,
        };
        if changed {
            self.send(&event);
        }
    }

    fn current_connection(&self) -> ServerEvent {
        match self.connection.lock() {
            Ok(last) => last.clone(),
            Err(_) => connection_event(true, None),
        }
    }
}

/// The text frame of `event`.
fn frame(event: &ServerEvent) -> String {
    // Events hold strings, numbers, ids and RFC 3339 times of the hub's clock only:
    // serializing them does not fail.
    serde_json::to_string(event).unwrap_or_default()
}

fn connection_event(online: bool, message: Option<String>) -> ServerEvent {
    ServerEvent::Connection {
        state: if online {
            ConnectionState::Online
        } else {
            ConnectionState::Unreachable
        },
        message,
    }
}

/// Whether two `connection` events say the same: the state, and while unreachable, why.
fn same_connection(a: &ServerEvent, b: &ServerEvent) -> bool {
    match (a, b) {
        (
            ServerEvent::Connection {
                state: a,
                message: why_a,
            },
            ServerEvent::Connection {
                state: b,
                message: why_b,
            },
        ) => a == b && (*b == ConnectionState::Online || why_a == why_b),
        _ => false,
    }
}

/// The document's events for the SDK's `events` (the messenger is needed to describe
/// conversations).
pub(crate) async fn translate(m: &mut Messenger, events: Vec<Event>, deliveries: &Deliveries) -> Vec<ServerEvent> {
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
                let message = views::message(&me, &message, others, &positions);
                out.push(ServerEvent::Message { group_id, message });
            }
            Event::MessageChanged { group_id, message, .. } => {
                let others = views::other_devices(m, &group_id).await;
                let positions = deliveries.positions(&group_id);
                let message = views::message(&me, &message, others, &positions);
                out.push(ServerEvent::MessageChanged { group_id, message });
            }
            Event::DeletedForEveryone { group_id, seq, .. } => {
                out.push(ServerEvent::MessageDeleted { group_id, seq });
            }
            Event::Joined { group_id, .. }
            | Event::MembersChanged { group_id, .. }
            | Event::SettingsChanged { group_id, .. }
            | Event::DeviceAdded { group_id, .. }
            | Event::Removed { group_id, .. } => {
                if !conversations_changed.contains(&group_id) {
                    conversations_changed.push(group_id);
                }
            }
            Event::Delivered { group_id, seq, to } => {
                out.push(ServerEvent::Delivered {
                    group_id,
                    seq,
                    to: to.into(),
                });
            }
            Event::VerifiedContactChanged { user, added, removed } => {
                out.push(ServerEvent::VerifiedContactChanged {
                    user_id: user,
                    added: added.iter().map(ContactDevice::from).collect(),
                    removed: removed.iter().map(ContactDevice::from).collect(),
                });
            }
            Event::Typing { group_id, user, typing } => {
                out.push(ServerEvent::Typing {
                    group_id,
                    user_id: user,
                    typing,
                });
            }
            Event::Presence { user, presence } => {
                out.push(ServerEvent::Presence {
                    user_id: user,
                    presence: presence.into(),
                });
            }
            Event::Expired { group_id, seq } => {
                out.push(ServerEvent::MessageDeleted { group_id, seq });
            }
            Event::LeafRefused {
                group_id,
                seq,
                source,
                by,
                leaves,
            } => {
                let message = leaf_refused_warning(&group_id, seq, source, by.as_ref(), &leaves);
                out.push(ServerEvent::LeafRefused {
                    group_id: group_id.clone(),
                    source: match source {
                        LeafSource::Welcome => "welcome",
                        LeafSource::Commit => "commit",
                    }
                    .to_owned(),
                    by: by.map(Into::into),
                    leaves: leaves
                        .into_iter()
                        .map(|l| RefusedLeafView {
                            leaf_index: l.leaf_index,
                            claims: l.claims.map(Into::into),
                            signature_key: l.signature_key,
                            reason: l.reason,
                        })
                        .collect(),
                    message,
                });
                if source == LeafSource::Commit && !conversations_changed.contains(&group_id) {
                    conversations_changed.push(group_id);
                }
            }
            event @ (Event::UnknownOwnDevice { .. } | Event::TransparencyFailed { .. }) => {
                out.push(ServerEvent::SecurityAlert {
                    message: event_text(&event),
                });
            }
            event @ Event::ActionRefused { .. } => {
                let message = event_text(&event);
                if let Event::ActionRefused { group_id, .. } = event {
                    out.push(ServerEvent::ActionRefused { group_id, message });
                }
            }
            Event::LeaveAnnounced { .. }
            | Event::Undecryptable { .. }
            | Event::JoinFailed { .. }
            | Event::MissedMessages { .. } => {}
        }
    }
    for group_id in conversations_changed {
        if let Ok(conversation) = views::conversation(m, &group_id, deliveries).await {
            out.push(ServerEvent::Conversation { conversation });
        }
    }
    out
}

/// Receives for as long as the process runs: while signed in, `receive` in short turns
/// (the messenger is held only during one), events translated and broadcast.
pub(crate) async fn receive_loop(ui: web::Data<Ui>) {
    let mut backoff = Duration::from_millis(500);
    let mut backed_up_at = std::time::Instant::now();
    loop {
        let outcome = {
            let mut state = ui.state.lock().await;
            match state.messenger.as_mut() {
                None => None,
                Some(m) if backed_up_at.elapsed() >= BACKUP_EVERY => {
                    // The key backup, when on: what changed since (never before a send is answered).
                    backed_up_at = std::time::Instant::now();
                    if let Err(e) = m.backup_if_enabled().await {
                        eprintln!("warning: key backup failed (the next one catches up): {e}");
                    }
                    Some(Ok((Vec::new(), m.client().clone())))
                }
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
                for event in &events {
                    ui.hub.send(event);
                }
                let to_streams = ui.clone();
                ui.deliveries.refresh(&client, move |event| to_streams.hub.send(&event));
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
        let hello = frame(&ui.hub.current_connection());
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
