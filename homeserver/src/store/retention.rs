//! SQL of the retention sweeper (the domain module `retention`) and of the admin API's storage
//! report. Every delete takes at most `limit` rows, so no statement holds many row locks
//! or runs long; the sweeper repeats them until a batch comes back short.

use parley_specs::admin_api::{InboxBacklog, OldestInboxEntry, PeerBacklog, RetentionBacklog, TableSize};
use time::OffsetDateTime;

use super::Db;

/// The session-level advisory lock one sweeper holds while it sweeps, so that one
/// process of a domain sweeps at a time. Any constant other processes of the same
/// database do not use works ("PARLEYRT").
pub const SWEEP_LOCK_KEY: i64 = 0x5041_524c_4559_5254;

/// How long everything is kept, in seconds (see `config::RetentionConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Ages {
    pub message_min: f64,
    pub message_max: f64,
    pub device_idle: f64,
    pub receipt: f64,
}

/// Takes the sweeper's lock on this connection; false when another session holds it.
pub async fn try_lock(db: &impl Db) -> Result<bool, tokio_postgres::Error> {
    let row = db
        .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK_KEY])
        .await?;
    Ok(row.get(0))
}

pub async fn unlock(db: &impl Db) -> Result<(), tokio_postgres::Error> {
    db.query_one("SELECT pg_advisory_unlock($1)", &[&SWEEP_LOCK_KEY])
        .await?;
    Ok(())
}

/// Where a pass over the messages stopped: the last one looked at, in
/// (created_at, group_id, seq) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCursor {
    pub created_at: OffsetDateTime,
    pub group_id: String,
    pub seq: i64,
}

impl MessageCursor {
    /// Before every message.
    pub fn start() -> Self {
        Self {
            created_at: OffsetDateTime::UNIX_EPOCH,
            group_id: String::new(),
            seq: i64::MIN,
        }
    }
}

/// What one batch over the messages did.
#[derive(Debug, Default)]
pub struct MessageBatch {
    /// Messages looked at; fewer than the limit ends the pass.
    pub scanned: i64,
    pub messages: u64,
    /// Receipts dropped because their message is older than the receipt age.
    pub receipts: u64,
    /// Inbox entries (not receipts) dropped with messages past the maximum age.
    pub inbox_entries: u64,
    /// Queued sends dropped with messages past the maximum age.
    pub queued: u64,
    /// The last message looked at, to continue after.
    pub last: Option<MessageCursor>,
}

/// One batch of the message pass, in one short transaction: of the next `limit`
/// messages older than the minimum age after `after`,
/// - receipts of those older than the receipt age are dropped from inboxes;
/// - those older than the maximum age lose their inbox entries (the devices are marked
///   as having missed messages) and their queued sends;
/// - every one that no inbox entry and no queued send needs any more is deleted: every
///   local device acknowledged it and every member server has it.
pub async fn sweep_messages(
    db: &mut deadpool_postgres::Client,
    after: &MessageCursor,
    ages: Ages,
    limit: i64,
) -> Result<MessageBatch, tokio_postgres::Error> {
    let tx = db.transaction().await?;
    let scan = tx
        .prepare_cached(
            "SELECT group_id, seq, created_at,
                    created_at < now() - $5 * interval '1 second',
                    created_at < now() - $6 * interval '1 second'
             FROM group_messages
             WHERE (created_at, group_id, seq) > ($1, $2, $3) AND created_at < now() - $4 * interval '1 second'
             ORDER BY created_at, group_id, seq LIMIT $7",
        )
        .await?;
    let rows = tx
        .query(
            &scan,
            &[
                &after.created_at,
                &after.group_id,
                &after.seq,
                &ages.message_min,
                &ages.receipt,
                &ages.message_max,
                &limit,
            ],
        )
        .await?;
    let mut batch = MessageBatch {
        scanned: rows.len() as i64,
        last: rows.last().map(|r| MessageCursor {
            created_at: r.get(2),
            group_id: r.get(0),
            seq: r.get(1),
        }),
        ..MessageBatch::default()
    };
    if rows.is_empty() {
        return Ok(batch);
    }
    let pick = |column: usize| -> (Vec<String>, Vec<i64>) {
        rows.iter()
            .filter(|r| column == 0 || r.get::<_, bool>(column))
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .unzip()
    };
    let (all_groups, all_seqs) = pick(0);
    let (receipt_groups, receipt_seqs) = pick(3);
    let (old_groups, old_seqs) = pick(4);
    if !receipt_groups.is_empty() {
        let stmt = tx
            .prepare_cached(
                "DELETE FROM inbox i USING unnest($1::text[], $2::int8[]) AS m(group_id, seq)
                 WHERE i.kind = 3 AND i.group_id = m.group_id AND i.seq = m.seq",
            )
            .await?;
        batch.receipts = tx.execute(&stmt, &[&receipt_groups, &receipt_seqs]).await?;
    }
    if !old_groups.is_empty() {
        batch.inbox_entries = drop_entries_of(&tx, &old_groups, &old_seqs).await?;
        let stmt = tx
            .prepare_cached(
                "DELETE FROM federation_queue q USING unnest($1::text[], $2::int8[]) AS m(group_id, seq)
                 WHERE q.group_id = m.group_id AND q.seq = m.seq",
            )
            .await?;
        batch.queued = tx.execute(&stmt, &[&old_groups, &old_seqs]).await?;
    }
    let delete = tx
        .prepare_cached(
            "DELETE FROM group_messages g USING unnest($1::text[], $2::int8[]) AS m(group_id, seq)
             WHERE g.group_id = m.group_id AND g.seq = m.seq
               AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.group_id = m.group_id AND i.seq = m.seq)
               AND NOT EXISTS (SELECT 1 FROM federation_queue q WHERE q.group_id = m.group_id AND q.seq = m.seq)",
        )
        .await?;
    batch.messages = tx.execute(&delete, &[&all_groups, &all_seqs]).await?;
    tx.commit().await?;
    Ok(batch)
}

/// Drops the inbox entries of these messages and marks their devices as having missed
/// messages. The devices are locked first, in id order, as every inbox writer locks them.
async fn drop_entries_of(
    tx: &deadpool_postgres::Transaction<'_>,
    groups: &[String],
    seqs: &[i64],
) -> Result<u64, tokio_postgres::Error> {
    let lock = tx
        .prepare_cached(
            "SELECT d.device_id FROM devices d
             WHERE d.device_id IN (SELECT i.device_id FROM inbox i
                                   JOIN unnest($1::text[], $2::int8[]) AS m(group_id, seq)
                                     ON i.group_id = m.group_id AND i.seq = m.seq)
             ORDER BY d.device_id FOR UPDATE OF d",
        )
        .await?;
    if tx.query(&lock, &[&groups, &seqs]).await?.is_empty() {
        return Ok(0);
    }
    let drop = tx
        .prepare_cached(
            "WITH gone AS (
                 DELETE FROM inbox i USING unnest($1::text[], $2::int8[]) AS m(group_id, seq)
                 WHERE i.group_id = m.group_id AND i.seq = m.seq
                 RETURNING i.device_id, i.position, i.kind),
             per_device AS (
                 SELECT device_id, max(position) AS through, count(*) FILTER (WHERE kind <> 3) AS n
                 FROM gone GROUP BY device_id),
             marked AS (
                 UPDATE devices d
                 SET inbox_dropped_through = greatest(COALESCE(d.inbox_dropped_through, 0), p.through),
                     inbox_dropped_count = d.inbox_dropped_count + p.n
                 FROM per_device p WHERE d.device_id = p.device_id AND p.n > 0)
             SELECT COALESCE(sum(n), 0)::int8 FROM per_device",
        )
        .await?;
    let dropped: i64 = tx.query_one(&drop, &[&groups, &seqs]).await?.get(0);
    Ok(u64::try_from(dropped).unwrap_or(0))
}

/// Up to `limit` devices after `after` (in id order) not seen for `idle_secs` that still
/// have inbox entries.
pub async fn idle_devices_with_entries(
    db: &impl Db,
    after: &str,
    idle_secs: f64,
    limit: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT d.device_id FROM devices d
             WHERE d.device_id > $1 AND d.last_seen_at < now() - $2 * interval '1 second'
               AND EXISTS (SELECT 1 FROM inbox i WHERE i.device_id = d.device_id)
             ORDER BY d.device_id LIMIT $3",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&after, &idle_secs, &limit])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Drops the oldest `limit` inbox entries of a device while it is still idle, and marks
/// it as having missed them (receipts are dropped without a mark). Returns how many
/// entries went; 0 once the device has none or was seen again.
pub async fn drop_idle_entries(
    db: &impl Db,
    device: &str,
    idle_secs: f64,
    limit: i64,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH idle AS (
                 SELECT device_id FROM devices
                 WHERE device_id = $1 AND last_seen_at < now() - $2 * interval '1 second' FOR UPDATE),
             gone AS (
                 DELETE FROM inbox
                 WHERE device_id IN (SELECT device_id FROM idle)
                   AND position IN (SELECT position FROM inbox WHERE device_id = $1 ORDER BY position LIMIT $3)
                 RETURNING position, kind),
             marked AS (
                 UPDATE devices d
                 SET inbox_dropped_through = greatest(COALESCE(d.inbox_dropped_through, 0),
                                                      (SELECT max(position) FROM gone)),
                     inbox_dropped_count = d.inbox_dropped_count + (SELECT count(*) FROM gone WHERE kind <> 3)
                 WHERE d.device_id = $1 AND EXISTS (SELECT 1 FROM gone WHERE kind <> 3))
             SELECT count(*) FROM gone",
        )
        .await?;
    let gone: i64 = db.query_one(&stmt, &[&device, &idle_secs, &limit]).await?.get(0);
    Ok(u64::try_from(gone).unwrap_or(0))
}

/// One-time KeyPackages past their expiry (never handed out any more).
pub async fn sweep_expired_key_packages(db: &impl Db, limit: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM key_packages WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM key_packages WHERE NOT last_resort AND expires_at < now()
                 LIMIT $1 FOR UPDATE SKIP LOCKED))",
        )
        .await?;
    db.execute(&stmt, &[&limit]).await
}

/// Claim records older than the hour the claim budgets look at.
pub async fn sweep_old_claims(db: &impl Db, limit: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM key_package_claims WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM key_package_claims WHERE claimed_at <= now() - interval '1 hour'
                 LIMIT $1 FOR UPDATE SKIP LOCKED))",
        )
        .await?;
    db.execute(&stmt, &[&limit]).await
}

/// Replay records (signed federation requests seen) older than `max_age_ms`: a request
/// that old is refused as stale before its record would be looked at.
pub async fn sweep_seen_requests(db: &impl Db, max_age_ms: i64, limit: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM federation_seen_requests WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM federation_seen_requests WHERE seen_at < now() - $1 * interval '1 millisecond'
                 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .await?;
    db.execute(&stmt, &[&(max_age_ms as f64), &limit]).await
}

/// Retention's mark on a device: entries up to this position were dropped unread, and
/// how many. None when nothing was dropped since the device last acknowledged past it.
pub async fn dropped(db: &impl Db, device: &str) -> Result<Option<(i64, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT inbox_dropped_through, inbox_dropped_count FROM devices
             WHERE device_id = $1 AND inbox_dropped_through IS NOT NULL",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&device]).await?.map(|r| (r.get(0), r.get(1))))
}

/// A device acknowledged up to `up_to`: refreshes its `last_seen_at` when older than
/// `refresh_secs`, and clears retention's mark once it acknowledged past the dropped
/// entries. Writes nothing when neither applies.
pub async fn acknowledged(
    db: &impl Db,
    device: &str,
    up_to: i64,
    refresh_secs: f64,
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE devices
             SET last_seen_at = greatest(last_seen_at, now()),
                 inbox_dropped_through = CASE WHEN inbox_dropped_through <= $2 THEN NULL ELSE inbox_dropped_through END,
                 inbox_dropped_count = CASE WHEN inbox_dropped_through <= $2 THEN 0 ELSE inbox_dropped_count END
             WHERE device_id = $1
               AND (last_seen_at < now() - $3 * interval '1 second' OR inbox_dropped_through <= $2)",
        )
        .await?;
    db.execute(&stmt, &[&device, &up_to, &refresh_secs]).await?;
    Ok(())
}

pub async fn database_size(db: &impl Db) -> Result<i64, tokio_postgres::Error> {
    let stmt = db.prepare_cached("SELECT pg_database_size(current_database())").await?;
    Ok(db.query_one(&stmt, &[]).await?.get(0))
}

/// Every table of the schema: PostgreSQL's row estimate (autovacuum's, without reading
/// the rows) and its size on disk with indexes and TOAST, biggest first.
pub async fn table_sizes(db: &impl Db) -> Result<Vec<TableSize>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT c.relname::text, greatest(c.reltuples, 0)::int8, pg_total_relation_size(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname = current_schema()
             ORDER BY pg_total_relation_size(c.oid) DESC, c.relname",
        )
        .await?;
    Ok(db
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| TableSize {
            table: r.get(0),
            rows_estimate: r.get(1),
            bytes: r.get(2),
        })
        .collect())
}

/// Rows past their retention that the sweeper has not deleted yet (exact counts: they
/// read the old rows, which the sweeper keeps few).
pub async fn backlog(
    db: &impl Db,
    ages: Ages,
    seen_request_max_age_ms: i64,
) -> Result<RetentionBacklog, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT
                (SELECT count(*) FROM group_messages m
                 WHERE m.created_at < now() - $1 * interval '1 second'
                   AND (m.created_at < now() - $2 * interval '1 second'
                        OR (NOT EXISTS (SELECT 1 FROM inbox i WHERE i.group_id = m.group_id AND i.seq = m.seq)
                            AND NOT EXISTS (SELECT 1 FROM federation_queue q
                                            WHERE q.group_id = m.group_id AND q.seq = m.seq)))),
                (SELECT count(*) FROM inbox i JOIN devices d USING (device_id)
                 WHERE d.last_seen_at < now() - $3 * interval '1 second'),
                (SELECT count(*) FROM inbox i JOIN group_messages m ON m.group_id = i.group_id AND m.seq = i.seq
                 WHERE i.kind = 3 AND m.created_at < now() - $4 * interval '1 second'),
                (SELECT count(*) FROM key_packages WHERE NOT last_resort AND expires_at < now()),
                (SELECT count(*) FROM key_package_claims WHERE claimed_at <= now() - interval '1 hour'),
                (SELECT count(*) FROM federation_seen_requests WHERE seen_at < now() - $5 * interval '1 millisecond')",
        )
        .await?;
    let row = db
        .query_one(
            &stmt,
            &[
                &ages.message_min,
                &ages.message_max,
                &ages.device_idle,
                &ages.receipt,
                &(seen_request_max_age_ms as f64),
            ],
        )
        .await?;
    Ok(RetentionBacklog {
        messages: row.get(0),
        idle_device_inbox_entries: row.get(1),
        receipts: row.get(2),
        expired_key_packages: row.get(3),
        key_package_claims: row.get(4),
        replay_records: row.get(5),
    })
}

/// The outbound federation queue per destination: depth and oldest entry.
pub async fn peer_backlog(db: &impl Db) -> Result<Vec<PeerBacklog>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT d.destination, count(q.id), min(q.enqueued_at), d.failures, d.last_error
             FROM federation_destinations d LEFT JOIN federation_queue q USING (destination)
             GROUP BY d.destination, d.failures, d.last_error ORDER BY min(q.enqueued_at) NULLS LAST, d.destination",
        )
        .await?;
    Ok(db
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| PeerBacklog {
            server: r.get(0),
            queued: r.get(1),
            oldest_enqueued_at: r.get(2),
            failures: r.get(3),
            last_error: r.get(4),
        })
        .collect())
}

/// Local inboxes: entries waiting (estimate), devices with any, and the oldest entry.
pub async fn inbox_backlog(db: &impl Db) -> Result<InboxBacklog, tokio_postgres::Error> {
    let counts = db
        .prepare_cached(
            "SELECT (SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'inbox'::regclass),
                    (SELECT count(*) FROM devices d WHERE EXISTS (SELECT 1 FROM inbox i WHERE i.device_id = d.device_id))",
        )
        .await?;
    let row = db.query_one(&counts, &[]).await?;
    // Walks messages oldest first (by index) to the first one an inbox still holds.
    let oldest = db
        .prepare_cached(
            "SELECT i.device_id, a.localpart, m.group_id, m.seq, m.created_at
             FROM group_messages m
             CROSS JOIN LATERAL (SELECT device_id FROM inbox i
                                 WHERE i.group_id = m.group_id AND i.seq = m.seq LIMIT 1) i
             JOIN devices a ON a.device_id = i.device_id
             ORDER BY m.created_at, m.group_id, m.seq LIMIT 1",
        )
        .await?;
    let oldest_entry = db.query_opt(&oldest, &[]).await?.map(|r| OldestInboxEntry {
        device_id: r.get(0),
        localpart: r.get(1),
        group_id: r.get(2),
        seq: r.get(3),
        sent_at: r.get(4),
    });
    Ok(InboxBacklog {
        entries_estimate: row.get(0),
        devices_with_entries: row.get(1),
        oldest_entry,
    })
}
