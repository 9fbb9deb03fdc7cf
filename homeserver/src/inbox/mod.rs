//! Device inboxes: long-poll reads woken by new entries, acknowledgements that produce
//! delivery receipts, and the sweep that makes disappearing messages disappear.

use std::collections::HashMap;
use std::time::Duration;

use parley_specs::federation_api::{DeliveryReceipt, MAX_RECEIPTS_PER_REQUEST, ReceiptsRequest, ReceiptsResult};
use parley_specs::groups_api::{
    GroupMember, InboxEntryKind, InboxPage, InboxQuery, MAX_INBOX_LIMIT, MAX_INBOX_TIMEOUT_MS,
};
use parley_specs::{DeviceId, ErrorCode, GroupId, Localpart, ServerName, UserId};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store;
use crate::store::inbox::{NewEntry, Recipient};

const DEFAULT_LIMIT: u32 = 100;

pub mod relay;
mod waker;
pub use waker::{Announcement, FreshEntry, InboxWaker, Mailbox, REVOKED_MARK, StreamSlot};

pub async fn read(state: &AppState, who: &DeviceId, query: InboxQuery) -> Result<InboxPage, ApiError> {
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let timeout = query.timeout_ms.unwrap_or(0);
    if !(1..=MAX_INBOX_LIMIT).contains(&limit) || timeout > MAX_INBOX_TIMEOUT_MS || after < 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("limit is 1 to {MAX_INBOX_LIMIT}, timeout_ms at most {MAX_INBOX_TIMEOUT_MS}, after not negative"),
        ));
    }
    // Entries the server's retention dropped unread are reported at once, never waited on.
    let missed = crate::retention::missed(state, who, after).await?;
    let deadline = match missed {
        Some(_) => tokio::time::Instant::now(),
        None => tokio::time::Instant::now() + Duration::from_millis(timeout),
    };
    let mailbox = watch(state, who).await?;
    loop {
        // Registered before the query, so an entry committed meanwhile still wakes us.
        let notified = mailbox.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if mailbox.revoked() {
            return Err(revoked_device());
        }
        let entries = {
            let db = state.pool.get().await?;
            store::inbox::read(&db, who, after, i64::from(limit)).await?
        };
        let now = tokio::time::Instant::now();
        // A shutting-down process answers at once; the client polls again elsewhere.
        if !entries.is_empty() || now >= deadline || state.inbox_waker.stopping() {
            let next_cursor = entries
                .last()
                .map_or(missed.map_or(after, |m| m.through.max(after)), |e| e.cursor);
            // What was read, not the reader's own `after`, which may lie ahead.
            if let Some(last) = entries.last() {
                mailbox.saw(last.cursor);
            }
            observe_push_latency(state, &entries);
            return Ok(InboxPage {
                entries,
                next_cursor,
                missed,
            });
        }
        // Woken by a write (or by `recheck_forever`, if a wake-up was lost), or by a stop.
        tokio::select! {
            _ = tokio::time::timeout(deadline - now, notified) => {}
            _ = state.inbox_waker.stopped() => {}
        }
    }
}

/// The mailbox a reader of `device` waits on, once the device is known to be there: a
/// revocation committed before the mailbox was held is seen here, one committed after it
/// reaches the mailbox (`InboxWaker::revoke`), so a reader never misses its device's end.
pub async fn watch(state: &AppState, device: &DeviceId) -> Result<std::sync::Arc<Mailbox>, ApiError> {
    let mailbox = state.inbox_waker.handle(device.as_str());
    let db = state.pool.get().await?;
    let positions = store::inbox::last_positions(&db, &[device.as_str().to_owned()]).await?;
    // The reader reads everything up to here next: the re-check need not wake it for it.
    let Some(position) = positions.first().and_then(|(_, position)| *position) else {
        return Err(revoked_device());
    };
    mailbox.saw(position);
    Ok(mailbox)
}

/// What a reader of a device revoked while it waited gets.
pub fn revoked_device() -> ApiError {
    ApiError::new(
        ErrorCode::UnknownToken,
        "this device was revoked while it waited; log in again",
    )
}

/// Up to `limit` entries of `device`'s inbox after `cursor`, without waiting.
pub async fn entries_after(
    state: &AppState,
    device: &DeviceId,
    cursor: i64,
    limit: i64,
) -> Result<Vec<parley_specs::groups_api::InboxEntry>, ApiError> {
    let db = state.pool.get().await?;
    Ok(store::inbox::read(&db, device, cursor, limit).await?)
}

pub fn observe_push_latency(state: &AppState, entries: &[parley_specs::groups_api::InboxEntry]) {
    let now = OffsetDateTime::now_utc();
    for entry in entries.iter().filter(|e| e.kind == InboxEntryKind::Message) {
        state
            .metrics
            .push_latency
            .observe((now - entry.sent_at).as_seconds_f64().max(0.0));
    }
}

/// Acknowledges entries up to `up_to`; the senders' devices get delivery receipts: at
/// once for senders of this server, and through their servers (after the commit, best
/// effort, never failing the acknowledgement) for senders of other servers.
pub async fn ack(state: &AppState, receiver: &GroupMember, up_to: i64) -> Result<(), ApiError> {
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let acked = store::inbox::ack(&tx, &receiver.device_id, up_to).await?;
    let receipts: Vec<DeliveryReceipt> = acked
        .iter()
        .filter_map(|message| {
            Some(DeliveryReceipt {
                group_id: GroupId::parse(&message.group_id).ok()?,
                seq: message.seq,
                sender: GroupMember {
                    user_id: UserId::parse(&message.sender_user).ok()?,
                    device_id: DeviceId::parse(&message.sender_device).ok()?,
                },
                receiver: receiver.clone(),
            })
        })
        .collect();
    let own = &state.config.server_name;
    let (local, for_other_servers): (Vec<_>, Vec<_>) = receipts
        .into_iter()
        .partition(|r| r.sender.user_id.server_name() == *own);
    let woken = write_receipts(&tx, own, &local).await?;
    tx.commit().await?;
    state.inbox_waker.wake(&woken);
    // After the commit, alone: the device's row is never locked before the senders'.
    // Best effort, on the same connection: the acknowledgement itself is committed.
    if let Err(error) = crate::retention::acknowledged(state, &db, &receiver.device_id, up_to).await {
        tracing::warn!(%error, "cannot record an acknowledgement for retention");
    }
    if !for_other_servers.is_empty() {
        match &state.remote {
            Some(outgoing) => remote::receipts::relay(outgoing, for_other_servers),
            None => tracing::debug!(
                receipts = for_other_servers.len(),
                "federation is off; receipts for senders of other servers dropped"
            ),
        }
    }
    Ok(())
}

/// Writes delivery receipts: every device of each receipt's sender user (when a user of
/// this server), except the receiving device itself, gets a `receipt` entry, all in one
/// append (one lock order for all devices). The caller has checked the receipts and
/// commits; it wakes the devices returned once committed. Nothing is deduplicated: a
/// receipt written twice gives a second entry, which only marks the same message
/// delivered to the same device again.
async fn write_receipts(
    db: &impl store::Db,
    own: &ServerName,
    receipts: &[DeliveryReceipt],
) -> Result<Vec<String>, ApiError> {
    let mut devices_of: HashMap<Localpart, Vec<DeviceId>> = HashMap::new();
    for receipt in receipts {
        if receipt.sender.user_id.server_name() != *own {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = devices_of.entry(receipt.sender.user_id.localpart()) {
            let devices = store::devices::list(db, slot.key())
                .await?
                .iter()
                .filter_map(|d| DeviceId::parse(&d.device_id).ok())
                .collect();
            slot.insert(devices);
        }
    }
    let entries: Vec<NewEntry> = receipts
        .iter()
        .flat_map(|receipt| {
            let localpart = receipt.sender.user_id.localpart();
            let devices = devices_of.get(&localpart).map_or(&[][..], Vec::as_slice);
            devices
                .iter()
                .filter(|device_id| **device_id != receipt.receiver.device_id)
                .map(move |device_id| NewEntry {
                    receipt_from: Some(&receipt.receiver),
                    ..Recipient {
                        localpart: localpart.clone(),
                        device_id,
                    }
                    .entry(InboxEntryKind::Receipt, &receipt.group_id, receipt.seq)
                })
        })
        .collect();
    Ok(store::inbox::devices(store::inbox::append(db, &entries).await?))
}

/// Receipts of `origin`'s devices for messages sent by users of this server, relayed by
/// `origin`: each is checked against the stored message and its group's members.
pub async fn receive_remote_receipts(
    app: &AppState,
    origin: &ServerName,
    request: ReceiptsRequest,
) -> Result<ReceiptsResult, ApiError> {
    if request.receipts.len() > MAX_RECEIPTS_PER_REQUEST {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!("at most {MAX_RECEIPTS_PER_REQUEST} receipts per request"),
        ));
    }
    if let Some(stranger) = request
        .receipts
        .iter()
        .find(|r| r.receiver.user_id.server_name() != *origin)
    {
        return Err(ApiError::new(
            ErrorCode::SenderNotOfOrigin,
            format!(
                "{} may send receipts of its own users only, not of {}",
                origin, stranger.receiver.user_id
            ),
        ));
    }
    let total = request.receipts.len();
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    let mut valid = Vec::with_capacity(total);
    let mut early = Vec::new();
    for receipt in request.receipts {
        if receipt.sender.user_id.server_name() != app.config.server_name {
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
    let woken = write_receipts(&tx, &app.config.server_name, &valid).await?;
    tx.commit().await?;
    app.inbox_waker.wake(&woken);
    let accepted = valid.len();
    tracing::debug!(%origin, accepted, early = early.len(), total, "delivery receipts received");
    Ok(ReceiptsResult {
        accepted: u64::try_from(accepted).unwrap_or(u64::MAX),
        skipped: u64::try_from(total.saturating_sub(accepted + early.len())).unwrap_or(u64::MAX),
        early,
    })
}

/// The safety net for lost wake-ups (a process that crashed between its commit and its
/// NOTIFY, a notification dropped while the relay reconnected): every `interval`, one
/// query reads the last inbox position of every device with a reader on this process;
/// readers of devices with entries they were never woken for are woken, and readers of
/// devices that are gone are ended. Waiting readers themselves never poll, so an idle
/// connection costs no queries.
pub async fn recheck_forever(
    pool: deadpool_postgres::Pool,
    waker: std::sync::Arc<InboxWaker>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let watched = waker.watched();
        if watched.is_empty() {
            continue;
        }
        let positions = match pool.get().await {
            Ok(db) => store::inbox::last_positions(&db, &watched)
                .await
                .map_err(ApiError::from),
            Err(e) => Err(ApiError::from(e)),
        };
        match positions {
            Ok(positions) => {
                let woken = waker.catch_up(&positions);
                metrics.inbox_rechecks.inc();
                metrics.inbox_recheck_wakeups.inc_by(woken as u64);
                if woken > 0 {
                    tracing::info!(woken, "inbox re-check woke readers that missed a wake-up");
                }
            }
            Err(e) => tracing::warn!(error = %e, "inbox re-check failed; trying again next interval"),
        }
    }
}

/// Deletes expired messages and inbox entries now and every `interval`. Safe on every
/// process at once: each run is one idempotent DELETE per table.
pub async fn sweep_expired_forever(pool: deadpool_postgres::Pool, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let result = async {
            let db = pool.get().await.map_err(|e| e.to_string())?;
            let entries = store::inbox::delete_expired(&db).await.map_err(|e| e.to_string())?;
            let messages = store::groups::delete_expired(&db).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((entries, messages))
        }
        .await;
        match result {
            Ok((0, 0)) => {}
            Ok((entries, messages)) => tracing::info!(entries, messages, "deleted expired messages"),
            Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying later"),
        }
    }
}
