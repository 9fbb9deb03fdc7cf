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

/// Waits before each retry of a request that failed; after the last, the receipts are
/// dropped.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

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
                send_with_retries(&state, &destination, batch).await;
            }
        });
    }
}

async fn send_with_retries(state: &FederationState, destination: &ServerName, receipts: &[DeliveryReceipt]) {
    let body = match serde_json::to_vec(&ReceiptsRequest {
        receipts: receipts.to_vec(),
    }) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "encoding receipts failed; dropped");
            return;
        }
    };
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let outcome = call(state, reqwest::Method::POST, destination, RECEIPTS.path, body.clone()).await;
        let retry = match outcome {
            Ok((status, _)) if status.is_success() => return,
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
        match delays.next() {
            Some(delay) if retry => tokio::time::sleep(*delay).await,
            _ => {
                tracing::info!(%destination, receipts = receipts.len(), "delivery receipts dropped");
                return;
            }
        }
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
    for receipt in request.receipts {
        if receipt.sender.user_id.server_name() != state.server_name
            || !store::groups::is_member(&tx, &receipt.group_id, &receipt.receiver).await?
        {
            continue;
        }
        // Messages no longer stored (expired) are skipped, not refused.
        let sent_by = store::groups::message_sender(&tx, receipt.group_id.as_str(), receipt.seq).await?;
        if sent_by.as_ref() == Some(&receipt.sender) {
            valid.push(receipt);
        }
    }
    let woken = inbox::write_receipts(&tx, &state.server_name, &valid).await?;
    tx.commit().await?;
    app.inbox_waker.wake(&woken);
    let accepted = valid.len();
    tracing::debug!(origin = %peer.origin, accepted, total, "delivery receipts received");
    Ok(web::Json(ReceiptsResult {
        accepted: u64::try_from(accepted).unwrap_or(u64::MAX),
        skipped: u64::try_from(total.saturating_sub(accepted)).unwrap_or(u64::MAX),
    }))
}
