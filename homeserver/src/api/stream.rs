//! The inbox as a WebSocket: entries are pushed as JSON text frames as they arrive; the
//! client may acknowledge with `{"up_to": n}` frames on the same socket.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, Session};
use futures_util::StreamExt as _;
use parley_specs::groups_api::{AckRequest, StreamQuery};

use super::auth::AuthedDevice;
use crate::error::ApiError;
use crate::inbox;
use crate::state::AppState;

/// Entries pushed per database read.
const BATCH: i64 = 100;

pub async fn inbox_stream(
    state: web::Data<AppState>,
    who: AuthedDevice,
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    // One device has few reasons to hold many sockets; each costs memory and wake-ups.
    let max = state.config.limits.inbox_streams_per_device;
    let Some(slot) = state.inbox_waker.handle(who.device_id.as_str()).open_stream(max) else {
        let mut busy = ApiError::new(
            parley_specs::ErrorCode::RateLimited,
            format!("this device has {max} inbox streams open already (limits.inbox_streams_per_device)"),
        );
        busy.retry_after = Some(std::time::Duration::from_secs(10));
        return Err(busy.into());
    };
    let (response, session, messages) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::new(
            parley_specs::ErrorCode::InvalidParam,
            format!("this endpoint is a WebSocket; send a WebSocket upgrade request ({e})"),
        )
    })?;
    let messages = messages.aggregate_continuations().max_continuation_size(64 * 1024);
    actix_web::rt::spawn(push(state.into_inner(), who, session, messages, query.after, slot));
    Ok(response)
}

async fn push(
    state: std::sync::Arc<AppState>,
    who: AuthedDevice,
    mut session: Session,
    mut messages: actix_ws::AggregatedMessageStream,
    mut cursor: i64,
    // Held while the socket is open.
    _slot: inbox::StreamSlot,
) {
    let mailbox = match inbox::watch(&state, &who.device_id).await {
        Ok(mailbox) => mailbox,
        Err(e) => {
            let code = if e.code == parley_specs::ErrorCode::UnknownToken {
                actix_ws::CloseCode::Policy
            } else {
                actix_ws::CloseCode::Again
            };
            let _ = session.close(Some((code, e.message).into())).await;
            return;
        }
    };
    // A process that is shutting down says so with "going away", and the client
    // reconnects (to another process of the domain, if there is one).
    let away = (actix_ws::CloseCode::Away, "the server is shutting down; reconnect");
    loop {
        let notified = mailbox.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if state.inbox_waker.stopping() {
            let _ = session.close(Some(away.into())).await;
            return;
        }
        if mailbox.revoked() {
            let reason = "this device was revoked; log in again";
            let _ = session.close(Some((actix_ws::CloseCode::Policy, reason).into())).await;
            return;
        }
        let entries = match mailbox.take_after(cursor) {
            Some(fresh) => Ok(fresh),
            None => inbox::entries_after(&state, &who.device_id, cursor, BATCH).await,
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                let _ = session
                    .close(Some((actix_ws::CloseCode::Again, e.message).into()))
                    .await;
                return;
            }
        };
        inbox::observe_push_latency(&state, &entries);
        for entry in &entries {
            let Ok(json) = serde_json::to_string(entry) else {
                continue;
            };
            if session.text(json).await.is_err() {
                return; // the client went away
            }
            cursor = entry.cursor;
            mailbox.saw(cursor);
        }
        if entries.len() as i64 >= BATCH {
            continue;
        }
        tokio::select! {
            // Woken by a write (or by `inbox::recheck_forever`, if a wake-up was lost).
            _ = &mut notified => {}
            _ = state.inbox_waker.stopped() => {}
            message = messages.next() => match message {
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        return;
                    }
                }
                Some(Ok(AggregatedMessage::Text(text))) => {
                    let Ok(ack) = serde_json::from_str::<AckRequest>(&text) else {
                        let _ = session.close(Some((actix_ws::CloseCode::Invalid, "expected {\"up_to\": n}").into())).await;
                        return;
                    };
                    if let Err(e) = inbox::ack(&state, &who.member(), ack.up_to).await {
                        tracing::warn!(error = %e, "acknowledgement over the inbox stream failed");
                    }
                }
                Some(Ok(AggregatedMessage::Close(_))) | None | Some(Err(_)) => {
                    let _ = session.close(None).await;
                    return;
                }
                Some(Ok(_)) => {}
            }
        }
    }
}
