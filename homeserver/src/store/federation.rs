use super::Db;
use super::groups::{STORED_COLUMNS, StoredMessage, stored_from};

/// Records a signed request; false when it was seen before (a replay).
pub async fn remember_request(db: &impl Db, replay_key: &str) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("INSERT INTO federation_seen_requests (replay_key) VALUES ($1) ON CONFLICT DO NOTHING")
        .await?;
    Ok(db.execute(&stmt, &[&replay_key]).await? == 1)
}

/// Forgets requests older than `max_age_ms`: older ones are refused as stale anyway.
pub async fn forget_requests_older_than(db: &impl Db, max_age_ms: i64) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM federation_seen_requests WHERE seen_at < now() - $1 * interval '1 millisecond'")
        .await?;
    db.execute(&stmt, &[&(max_age_ms as f64)]).await
}

/// A destination claimed for sending: its row is locked until the transaction ends.
pub struct ClaimedDestination {
    pub failures: i32,
}

/// Queues messages for other servers: (destination, group, seq), in the order given.
pub async fn enqueue(db: &impl Db, rows: &[(&str, &str, i64)]) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let destinations: Vec<&str> = rows.iter().map(|r| r.0).collect();
    let groups: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let seqs: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let known = db
        .prepare_cached(
            "INSERT INTO federation_destinations (destination)
             SELECT DISTINCT d FROM unnest($1::text[]) AS d ORDER BY d ON CONFLICT DO NOTHING",
        )
        .await?;
    db.execute(&known, &[&destinations]).await?;
    let queue = db
        .prepare_cached(
            "INSERT INTO federation_queue (destination, group_id, seq)
             SELECT d, g, s FROM unnest($1::text[], $2::text[], $3::int8[]) WITH ORDINALITY AS q(d, g, s, o) ORDER BY o",
        )
        .await?;
    db.execute(&queue, &[&destinations, &groups, &seqs]).await?;
    Ok(())
}

/// Destinations with queued messages that are not backing off.
pub async fn due_destinations(db: &impl Db) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT d.destination FROM federation_destinations d
             WHERE d.next_attempt_at <= now()
               AND EXISTS (SELECT 1 FROM federation_queue q WHERE q.destination = d.destination)",
        )
        .await?;
    Ok(db.query(&stmt, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// Locks a destination for sending, unless another process is sending to it or it is
/// backing off.
pub async fn claim_destination(
    db: &impl Db,
    destination: &str,
) -> Result<Option<ClaimedDestination>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT failures FROM federation_destinations WHERE destination = $1 AND next_attempt_at <= now()
             FOR NO KEY UPDATE SKIP LOCKED",
        )
        .await?;
    Ok(db
        .query_opt(&stmt, &[&destination])
        .await?
        .map(|r| ClaimedDestination { failures: r.get(0) }))
}

/// The oldest queued messages for a destination with a queue id above `after`: (queue
/// id, message). A message that expired before it was sent has no stored message any
/// more. Starting after the last id sent skips the index entries of rows just deleted,
/// which a drained queue would otherwise walk through again on every read.
pub async fn queued(
    db: &impl Db,
    destination: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Option<StoredMessage>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT q.id, m.group_id IS NOT NULL, {STORED_COLUMNS}
             FROM (SELECT id, group_id, seq FROM federation_queue
                   WHERE destination = $1 AND id > $2 ORDER BY id LIMIT $3) q
             LEFT JOIN group_messages m ON m.group_id = q.group_id AND m.seq = q.seq
             ORDER BY q.id"
        ))
        .await?;
    Ok(db
        .query(&stmt, &[&destination, &after, &limit])
        .await?
        .iter()
        .map(|row| {
            let present: bool = row.get(1);
            (row.get(0), present.then(|| stored_from(row, 2)))
        })
        .collect())
}

/// Removes delivered (or dropped) queue rows.
pub async fn dequeue(db: &impl Db, ids: &[i64]) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM federation_queue WHERE id = ANY($1)")
        .await?;
    db.execute(&stmt, &[&ids]).await
}

/// Drops everything queued for a destination (one this server no longer federates with).
pub async fn drop_queue(db: &impl Db, destination: &str) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM federation_queue WHERE destination = $1")
        .await?;
    db.execute(&stmt, &[&destination]).await
}

/// Records a failed send: the destination is next tried after `retry_in_ms`.
pub async fn record_failure(
    db: &impl Db,
    destination: &str,
    failures: i32,
    retry_in_ms: i64,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE federation_destinations
             SET failures = $2, next_attempt_at = now() + $3 * interval '1 millisecond', last_error = $4
             WHERE destination = $1",
        )
        .await?;
    db.execute(&stmt, &[&destination, &failures, &(retry_in_ms as f64), &error])
        .await?;
    Ok(())
}

/// The destination is reachable again: no more backoff.
pub async fn reset_backoff(db: &impl Db, destination: &str) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE federation_destinations SET failures = 0, next_attempt_at = now(), last_error = NULL
             WHERE destination = $1 AND (failures > 0 OR next_attempt_at > now())",
        )
        .await?;
    db.execute(&stmt, &[&destination]).await?;
    Ok(())
}

/// The outbound queue of one destination.
pub struct QueueStats {
    pub destination: String,
    pub depth: i64,
    pub oldest_age_secs: f64,
    /// Consecutive failed sends (0: healthy).
    pub failures: i32,
    /// When it is next tried; in the future while it backs off.
    pub next_attempt_at: time::OffsetDateTime,
    pub backing_off: bool,
    /// Why the last send failed, while it keeps failing.
    pub last_error: Option<String>,
}

/// Every server group messages were ever queued for.
pub async fn destinations(db: &impl Db) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT destination FROM federation_destinations")
        .await?;
    Ok(db.query(&stmt, &[]).await?.into_iter().map(|row| row.get(0)).collect())
}

pub async fn queue_stats(db: &impl Db) -> Result<Vec<QueueStats>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT d.destination, count(q.id),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(q.enqueued_at))::float8, 0), d.failures,
                    d.next_attempt_at, d.next_attempt_at > now(), d.last_error
             FROM federation_destinations d LEFT JOIN federation_queue q USING (destination)
             GROUP BY d.destination
             ORDER BY d.destination",
        )
        .await?;
    Ok(db
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|r| QueueStats {
            destination: r.get(0),
            depth: r.get(1),
            oldest_age_secs: r.get(2),
            failures: r.get(3),
            next_attempt_at: r.get(4),
            backing_off: r.get(5),
            last_error: r.get(6),
        })
        .collect())
}

/// Ends a destination's backoff at an operator's request, so it is sent to at the next
/// poll; false when this server never queued anything for it.
pub async fn retry_now(db: &impl Db, destination: &str) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE federation_destinations SET failures = 0, next_attempt_at = now(), last_error = NULL
             WHERE destination = $1",
        )
        .await?;
    Ok(db.execute(&stmt, &[&destination]).await? == 1)
}

/// The allow and deny lists stored through the admin API: None when none are stored
/// (the configuration file's apply), else (allow, deny).
pub async fn stored_policy(db: &impl Db) -> Result<Option<(Option<Vec<String>>, Vec<String>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT allow, deny FROM federation_policy WHERE singleton")
        .await?;
    Ok(db.query_opt(&stmt, &[]).await?.map(|r| (r.get(0), r.get(1))))
}

pub async fn store_policy(
    db: &impl Db,
    allow: Option<&[String]>,
    deny: &[String],
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO federation_policy (singleton, allow, deny, updated_at) VALUES (TRUE, $1, $2, now())
             ON CONFLICT (singleton) DO UPDATE SET allow = $1, deny = $2, updated_at = now()",
        )
        .await?;
    db.execute(&stmt, &[&allow, &deny]).await?;
    Ok(())
}

pub async fn forget_policy(db: &impl Db) -> Result<(), tokio_postgres::Error> {
    let stmt = db.prepare_cached("DELETE FROM federation_policy").await?;
    db.execute(&stmt, &[]).await?;
    Ok(())
}

/// The hubs of the groups this server follows.
pub async fn followed_hubs(db: &impl Db) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT DISTINCT split_part(group_id, '@', 2) FROM groups WHERE public_state IS NULL")
        .await?;
    Ok(db.query(&stmt, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// For each destination with messages of the group still queued: the smallest queued
/// sequence number (everything before it reached that destination).
pub async fn oldest_queued_of_group(db: &impl Db, group: &str) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT destination, min(seq) FROM federation_queue WHERE group_id = $1 GROUP BY destination")
        .await?;
    Ok(db
        .query(&stmt, &[&group])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
