//! Delivery receipts across servers. When a device acknowledges messages sent by users
//! of other servers, its server sends the receipts to theirs (`POST
//! /federation/v1/receipts`), after the acknowledgement committed and in the background:
//! receipts are advisory, so a few attempts with backoff and then they are dropped. The
//! senders' server checks each receipt against what it stores and writes `receipt`
//! entries for the sender's devices exactly as for a receipt of its own devices.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, web};
use parley_specs::endpoints::federation::RECEIPTS;
use parley_specs::federation_api::{DeliveryReceipt, MAX_RECEIPTS_PER_REQUEST, ReceiptsRequest, ReceiptsResult};
use parley_specs::{ErrorCode, ServerName};

use super::{FederationState, authenticate, call};
use crate::error::ApiError;
use crate::inbox;
use crate::state::AppState;
use crate::store;

/// Waits before each retry of a request that failed, or of receipts that arrived before
/// their message; after the last, the receipts are dropped.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Sends receipts of this server's devices to the servers of the messages' senders: one
/// task per destination, requests of at most `MAX_RECEIPTS_PER_REQUEST`. Returns at once.
pub fn relay_receipts(state: web::Data<FederationState>, receipts: Vec<DeliveryReceipt>) {
    let mut by_destination: HashMap<ServerName, Vec<DeliveryReceipt>> = HashMap::new();
    for receipt in receipts {
        let destination = receipt.sender.user_id.server_name();
        if destination == state.server_name {
            continue;
        }
        by_destination.entry(destination).or_default().push(receipt);
    }
    for (destination, receipts) in by_destination {
        let state = state.clone();
        tokio::spawn(async move {
            for batch in receipts.chunks(MAX_RECEIPTS_PER_REQUEST) {
                send_with_retries(&state, &destination, batch.to_vec()).await;
            }
        });
    }
}

async fn send_with_retries(state: &FederationState, destination: &ServerName, mut receipts: Vec<DeliveryReceipt>) {
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let body = match serde_json::to_vec(&serde_json::json!({ "receipts": &receipts })) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "encoding receipts failed; dropped");
                return;
            }
        };
        let retry = match call(state, reqwest::Method::POST, destination, RECEIPTS.path, body).await {
            Ok((status, bytes)) if status.is_success() => {
                // Receipts that overtook their message go again; the rest are done.
                receipts = serde_json::from_slice::<ReceiptsResult>(&bytes)
                    .map(|r| r.early)
                    .unwrap_or_default();
                !receipts.is_empty()
            }
            Ok((status, bytes)) => {
                let answer: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
                tracing::info!(%destination, %status, %answer, "receipts refused");
                status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            Err(error) => {
                tracing::info!(%destination, %error, "receipts not sent");
                error.code == ErrorCode::RemoteUnavailable
            }
        };
        if !retry {
            return;
        }
        let Some(delay) = delays.next() else {
            tracing::info!(%destination, receipts = receipts.len(), "delivery receipts dropped");
            return;
        };
        tokio::time::sleep(*delay).await;
    }
}

/// `POST /federation/v1/receipts`: receipts of the origin's devices for messages sent by
/// users of this server.
pub async fn receive_receipts(
    state: web::Data<FederationState>,
    app: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<web::Json<ReceiptsResult>, ApiError> {
    let peer = authenticate(&req, &body, &state).await?;
    let request: ReceiptsRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("the receipts are not valid: {e}")))?;
    if request.receipts.len() > MAX_RECEIPTS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("at most {MAX_RECEIPTS_PER_REQUEST} receipts per request"),
        ));
    }
    if let Some(stranger) = request
        .receipts
        .iter()
        .find(|r| r.receiver.user_id.server_name() != peer.origin)
    {
        return Err(ApiError::new(
            ErrorCode::SenderNotOfOrigin,
            format!(
                "{} may send receipts of its own users only, not of {}",
                peer.origin, stranger.receiver.user_id
            ),
        ));
    }
    let total = request.receipts.len();
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let mut valid = Vec::with_capacity(total);
    let mut early = Vec::new();
    for receipt in request.receipts {
        if receipt.sender.user_id.server_name() != state.server_name {
            continue;
        }
        // Messages no longer stored (expired) are skipped, not refused; messages (and
        // the membership changes before them) not received from the hub yet are early.
        match store::groups::message_sender(&tx, receipt.group_id.as_str(), receipt.seq).await? {
            Some(sender) if sender == receipt.sender => {
                if store::groups::is_member(&tx, &receipt.group_id, &receipt.receiver).await? {
                    valid.push(receipt);
                }
            }
            Some(_) => {}
            None => {
                let last_seq = store::groups::position(&tx, &receipt.group_id)
                    .await?
                    .map(|(_, seq)| seq);
                if last_seq.is_some_and(|last| receipt.seq > last) {
                    early.push(receipt);
                }
            }
        }
    }
    let woken = inbox::write_receipts(&tx, &state.server_name, &valid).await?;
    tx.commit().await?;
    app.inbox_waker.wake(&woken);
    let accepted = valid.len();
    tracing::debug!(origin = %peer.origin, accepted, early = early.len(), total, "delivery receipts received");
    Ok(web::Json(ReceiptsResult {
        accepted: u64::try_from(accepted).unwrap_or(u64::MAX),
        skipped: u64::try_from(total.saturating_sub(accepted + early.len())).unwrap_or(u64::MAX),
        early,
    }))
}
