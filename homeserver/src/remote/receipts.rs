//! Delivery receipts across servers. When a device acknowledges messages sent by users
//! of other servers, its server sends the receipts to theirs (`POST
//! /federation/v1/receipts`), after the acknowledgement committed and in the background:
//! receipts are advisory, so a few attempts with backoff and then they are dropped. The
//! senders' server checks each receipt against what it stores and writes `receipt`
//! entries for the sender's devices exactly as for a receipt of its own devices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parley_specs::endpoints::federation::RECEIPTS;
use parley_specs::federation_api::{DeliveryReceipt, MAX_RECEIPTS_PER_REQUEST, ReceiptsRequest, ReceiptsResult};
use parley_specs::{ErrorCode, ServerName};

use super::{MAX_SMALL_ANSWER_BYTES, Remote, excerpt};

/// Waits before each retry of a request that failed, or of receipts that arrived before
/// their message (their server is still receiving the group's messages from its hub,
/// which after an outage of that server can take minutes); after the last, about five
/// minutes on, the receipts are dropped.
const RETRY_DELAYS: [Duration; 8] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(60),
    Duration::from_secs(60),
    Duration::from_secs(60),
];

/// Sends receipts of this server's devices to the servers of the messages' senders: one
/// task per destination, requests of at most `MAX_RECEIPTS_PER_REQUEST`. Returns at once.
pub fn relay(remote: &Arc<Remote>, receipts: Vec<DeliveryReceipt>) {
    let mut by_destination: HashMap<ServerName, Vec<DeliveryReceipt>> = HashMap::new();
    for receipt in receipts {
        let destination = receipt.sender.user_id.server_name();
        if destination == remote.server_name {
            continue;
        }
        by_destination.entry(destination).or_default().push(receipt);
    }
    for (destination, receipts) in by_destination {
        let remote = remote.clone();
        tokio::spawn(async move {
            for batch in receipts.chunks(MAX_RECEIPTS_PER_REQUEST) {
                send_with_retries(&remote, &destination, batch.to_vec()).await;
            }
        });
    }
}

async fn send_with_retries(remote: &Remote, destination: &ServerName, mut receipts: Vec<DeliveryReceipt>) {
    let mut delays = RETRY_DELAYS.iter();
    loop {
        let body = match serde_json::to_vec(&ReceiptsRequest {
            receipts: receipts.clone(),
        }) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "encoding receipts failed; dropped");
                return;
            }
        };
        let retry = match remote
            .call(
                reqwest::Method::POST,
                destination,
                RECEIPTS.path,
                body,
                MAX_SMALL_ANSWER_BYTES,
            )
            .await
        {
            Ok((status, bytes)) if status.is_success() => {
                // Receipts that overtook their message go again; the rest are done.
                receipts = serde_json::from_slice::<ReceiptsResult>(&bytes)
                    .map(|r| r.early)
                    .unwrap_or_default();
                !receipts.is_empty()
            }
            Ok((status, bytes)) => {
                let answer = excerpt(&bytes);
                tracing::info!(%destination, %status, %answer, "receipts refused");
                // 401 too: the destination may have failed to fetch our keys for now.
                status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::UNAUTHORIZED
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
