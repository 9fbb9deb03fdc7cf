//! Retention: a database that stops growing. A background sweeper deletes, in small
//! batches (each its own short transaction, never more than `batch_size` rows):
//! - stored messages that nobody needs any more: every local device acknowledged them and
//!   every member server has them (nothing in the federation queue), once older than
//!   `message_min_age_secs`; and every message older than `message_max_age_secs`,
//!   with the inbox entries and queued sends still holding it;
//! - the inbox entries of devices not seen for `device_idle_max_age_secs` (the device is
//!   told it missed messages when it returns: `InboxPage::missed`);
//! - delivery receipts waiting in inboxes once their message is `receipt_max_age_secs` old;
//! - expired one-time KeyPackages, KeyPackage claim records older than the hour the claim
//!   budgets look at, and federation replay records older than the replay window.
//!
//! Any number of processes of a domain run the sweeper; a PostgreSQL advisory lock lets
//! one of them sweep at a time (the others skip the pass).

use std::sync::Arc;
use std::time::Duration;

use parley_federation::request_auth::MAX_CLOCK_SKEW_MS;
use parley_specs::DeviceId;
use parley_specs::admin_api::StorageReport;
use parley_specs::groups_api::MissedEntries;

use crate::config::RetentionConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store;
use crate::store::retention::{Ages, MessageCursor};

/// Replay records are needed for twice the clock skew a signed request may have.
pub const REPLAY_WINDOW_MS: i64 = 2 * MAX_CLOCK_SKEW_MS;

/// Devices taken per look for idle ones with entries.
const IDLE_DEVICES_PER_LOOK: i64 = 100;

fn ages(config: &RetentionConfig) -> Ages {
    Ages {
        message_min: config.message_min_age_secs as f64,
        // The maximum never undercuts the minimum.
        message_max: config.message_max_age_secs.max(config.message_min_age_secs) as f64,
        device_idle: config.device_idle_max_age_secs as f64,
        receipt: config.receipt_max_age_secs as f64,
    }
}

/// What one pass deleted, per table and rule.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Messages nobody needs any more, or older than the maximum age.
    pub messages: u64,
    /// Inbox entries of idle devices.
    pub idle_inbox_entries: u64,
    /// Inbox entries of messages older than the maximum age.
    pub expired_inbox_entries: u64,
    pub receipts: u64,
    /// Queued sends of messages older than the maximum age.
    pub queued_sends: u64,
    pub key_packages: u64,
    pub key_package_claims: u64,
    pub replay_records: u64,
}

/// Sweeps every `sweep_interval_secs` until the process ends. A failed pass is logged
/// and retried at the next interval.
pub async fn sweep_forever(pool: deadpool_postgres::Pool, config: RetentionConfig, metrics: Arc<Metrics>) {
    if !config.enabled {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(config.sweep_interval_secs.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match sweep_once(&pool, &config, &metrics).await {
            Ok(Some(swept)) => {
                metrics.retention_passes.with_label_values(&["swept"]).inc();
                if swept != Swept::default() {
                    tracing::info!(?swept, "retention sweep");
                }
            }
            Ok(None) => metrics.retention_passes.with_label_values(&["skipped"]).inc(),
            Err(error) => {
                metrics.retention_passes.with_label_values(&["failed"]).inc();
                tracing::warn!(%error, "retention sweep failed; retrying at the next interval");
            }
        }
    }
}

/// One pass over every rule, until each has nothing left; `None` when another process
/// holds the sweeper's lock.
pub async fn sweep_once(
    pool: &deadpool_postgres::Pool,
    config: &RetentionConfig,
    metrics: &Metrics,
) -> Result<Option<Swept>, ApiError> {
    let mut db = pool.get().await?;
    if !store::retention::try_lock(&db).await? {
        return Ok(None);
    }
    let result = sweep_locked(&mut db, config, metrics).await;
    // A connection that cannot unlock is broken: it goes (and its lock with it).
    if store::retention::unlock(&db).await.is_err() {
        let _ = deadpool_postgres::Object::take(db);
    }
    result.map(Some)
}

async fn sweep_locked(
    db: &mut deadpool_postgres::Client,
    config: &RetentionConfig,
    metrics: &Metrics,
) -> Result<Swept, ApiError> {
    let limit = config.batch_size.max(1);
    let pause = Duration::from_millis(config.batch_pause_ms);
    let ages = ages(config);
    let count = |table: &str, rule: &str, n: u64| {
        metrics.retention_swept_rows.with_label_values(&[table, rule]).inc_by(n);
    };
    let mut swept = Swept::default();

    let client: &deadpool_postgres::Client = db;
    let n = in_batches(limit, pause, || {
        store::retention::sweep_seen_requests(client, REPLAY_WINDOW_MS, limit)
    })
    .await?;
    count("federation_seen_requests", "replay_window", n);
    swept.replay_records += n;
    let n = in_batches(limit, pause, || store::retention::sweep_old_claims(client, limit)).await?;
    count("key_package_claims", "older_than_an_hour", n);
    swept.key_package_claims += n;
    let n = in_batches(limit, pause, || {
        store::retention::sweep_expired_key_packages(client, limit)
    })
    .await?;
    count("key_packages", "expired", n);
    swept.key_packages += n;

    // Idle devices first (the messages their entries held can go in the same pass), each
    // once per pass: one that keeps receiving is emptied again at the next pass.
    let mut after = String::new();
    loop {
        let devices =
            store::retention::idle_devices_with_entries(client, &after, ages.device_idle, IDLE_DEVICES_PER_LOOK)
                .await?;
        for device in &devices {
            let n = in_batches(limit, pause, || {
                store::retention::drop_idle_entries(client, device, ages.device_idle, limit)
            })
            .await?;
            count("inbox", "device_idle", n);
            swept.idle_inbox_entries += n;
        }
        match devices.last() {
            Some(last) if devices.len() as i64 >= IDLE_DEVICES_PER_LOOK => after.clone_from(last),
            _ => break,
        }
    }

    let mut cursor = MessageCursor::start();
    loop {
        let batch = store::retention::sweep_messages(db, &cursor, ages, limit).await?;
        count("group_messages", "delivered_or_max_age", batch.messages);
        count("inbox", "receipt_age", batch.receipts);
        count("inbox", "message_max_age", batch.inbox_entries);
        count("federation_queue", "message_max_age", batch.queued);
        swept.messages += batch.messages;
        swept.receipts += batch.receipts;
        swept.expired_inbox_entries += batch.inbox_entries;
        swept.queued_sends += batch.queued;
        match batch.last {
            Some(last) if batch.scanned >= limit => cursor = last,
            _ => break,
        }
        tokio::time::sleep(pause).await;
    }
    Ok(swept)
}

/// Runs `batch` (a statement deleting at most `limit` rows) until it deletes fewer,
/// pausing between batches so the traffic gets the database; returns the rows deleted.
async fn in_batches<F, Fut>(limit: i64, pause: Duration, mut batch: F) -> Result<u64, tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, tokio_postgres::Error>>,
{
    let mut deleted = 0;
    loop {
        let n = batch().await?;
        deleted += n;
        if n < limit as u64 {
            return Ok(deleted);
        }
        tokio::time::sleep(pause).await;
    }
}

/// Entries retention dropped unread after `after`, if any (see `InboxPage::missed`).
pub async fn missed(state: &AppState, device: &DeviceId, after: i64) -> Result<Option<MissedEntries>, ApiError> {
    let db = state.pool.get().await?;
    Ok(store::retention::dropped(&db, device.as_str())
        .await?
        .filter(|(through, _)| *through > after)
        .map(|(through, count)| MissedEntries { through, count }))
}

/// A device acknowledged its inbox up to `up_to`: it is alive (an acknowledgement over a
/// WebSocket open for days counts as being seen), and retention's mark of entries it
/// missed goes once it acknowledged past them.
pub async fn acknowledged(
    state: &AppState,
    db: &impl store::Db,
    device: &DeviceId,
    up_to: i64,
) -> Result<(), ApiError> {
    // Often enough that a device acknowledging is never taken for an idle one.
    let refresh_secs = (state.config.retention.device_idle_max_age_secs / 4).clamp(1, 60) as f64;
    store::retention::acknowledged(db, device.as_str(), up_to, refresh_secs).await?;
    Ok(())
}

/// The admin API's storage report.
pub async fn storage_report(state: &AppState) -> Result<StorageReport, ApiError> {
    let config = &state.config.retention;
    let db = state.pool.get().await?;
    let tables = store::retention::table_sizes(&db).await?;
    let retention_backlog = store::retention::backlog(&db, ages(config), REPLAY_WINDOW_MS).await?;
    let peers = store::retention::peer_backlog(&db).await?;
    let inbox = store::retention::inbox_backlog(&db).await?;
    let database_size_bytes = store::retention::database_size(&db).await?;
    Ok(StorageReport {
        database_size_bytes,
        tables,
        retention_backlog,
        retention_enabled: config.enabled,
        peers,
        inbox,
    })
}
