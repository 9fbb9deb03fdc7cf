use parley_specs::groups_api::{GroupMember, InboxEntry, InboxEntryKind};
use parley_specs::{DeviceId, GroupId, Localpart, UserId};
use time::OffsetDateTime;

use super::Db;

const KIND_MESSAGE: i16 = 1;
const KIND_WELCOME: i16 = 2;
const KIND_RECEIPT: i16 = 3;

/// A local device that should receive an entry.
pub struct Recipient<'a> {
    pub localpart: Localpart,
    pub device_id: &'a DeviceId,
}

pub struct AckedMessage {
    pub group_id: String,
    pub seq: i64,
    pub sender_user: String,
    pub sender_device: String,
}

fn kind_code(kind: InboxEntryKind) -> i16 {
    match kind {
        InboxEntryKind::Message => KIND_MESSAGE,
        InboxEntryKind::Welcome => KIND_WELCOME,
        InboxEntryKind::Receipt => KIND_RECEIPT,
    }
}

impl<'a> Recipient<'a> {
    /// An entry for this recipient.
    pub fn entry(self, kind: InboxEntryKind, group_id: &'a GroupId, seq: i64) -> NewEntry<'a> {
        NewEntry {
            recipient: self,
            kind,
            group_id,
            seq,
            receipt_from: None,
            expires_at: None,
        }
    }
}

/// One inbox entry to write.
pub struct NewEntry<'a> {
    pub recipient: Recipient<'a>,
    pub kind: InboxEntryKind,
    pub group_id: &'a GroupId,
    pub seq: i64,
    /// For receipts: the device that received the message.
    pub receipt_from: Option<&'a GroupMember>,
    pub expires_at: Option<OffsetDateTime>,
}

/// Where an entry was appended.
pub struct Appended {
    pub device_id: String,
    pub position: i64,
    pub group_id: String,
    pub seq: i64,
}

/// Appends entries to inboxes, all in ONE statement: every device row involved is locked
/// in device id order, so concurrent writers can never deadlock on each other, and each
/// device's entries get its next positions in the order given. Devices that do not exist
/// here are skipped. Returns the entries written, in no particular order.
pub async fn append(db: &impl Db, entries: &[NewEntry<'_>]) -> Result<Vec<Appended>, tokio_postgres::Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let localparts: Vec<&str> = entries.iter().map(|e| e.recipient.localpart.as_str()).collect();
    let devices: Vec<&str> = entries.iter().map(|e| e.recipient.device_id.as_str()).collect();
    let kinds: Vec<i16> = entries.iter().map(|e| kind_code(e.kind)).collect();
    let groups: Vec<&str> = entries.iter().map(|e| e.group_id.as_str()).collect();
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    let receipt_users: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.receipt_from.map(|m| m.user_id.as_str()))
        .collect();
    let receipt_devices: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.receipt_from.map(|m| m.device_id.as_str()))
        .collect();
    let expiries: Vec<Option<OffsetDateTime>> = entries.iter().map(|e| e.expires_at).collect();
    let stmt = db
        .prepare_cached(
            "WITH wanted AS (
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::int8[],
                                      $6::text[], $7::text[], $8::timestamptz[]) WITH ORDINALITY
                     AS w(localpart, device_id, kind, group_id, seq, receipt_user, receipt_device, expires_at, ord)),
             per_device AS (SELECT device_id, localpart, count(*) AS n FROM wanted GROUP BY device_id, localpart),
             locked AS (
                 SELECT d.device_id, p.n FROM devices d JOIN per_device p USING (device_id, localpart)
                 WHERE d.device_id = ANY($2) -- found by key, never a scan of all devices
                 ORDER BY d.device_id FOR UPDATE OF d),
             bumped AS (
                 UPDATE devices d SET inbox_position = d.inbox_position + l.n FROM locked l
                 WHERE d.device_id = l.device_id RETURNING d.device_id, d.inbox_position - l.n AS base),
             numbered AS (SELECT w.*, row_number() OVER (PARTITION BY w.device_id ORDER BY w.ord) AS k FROM wanted w)
             INSERT INTO inbox (device_id, position, kind, group_id, seq, receipt_user, receipt_device, expires_at)
             SELECT n.device_id, b.base + n.k, n.kind, n.group_id, n.seq, n.receipt_user, n.receipt_device, n.expires_at
             FROM numbered n JOIN bumped b USING (device_id)
             RETURNING device_id, position, group_id, seq",
        )
        .await?;
    let rows = db
        .query(
            &stmt,
            &[
                &localparts,
                &devices,
                &kinds,
                &groups,
                &seqs,
                &receipt_users,
                &receipt_devices,
                &expiries,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Appended {
            device_id: r.get(0),
            position: r.get(1),
            group_id: r.get(2),
            seq: r.get(3),
        })
        .collect())
}

/// The devices reached by appended entries, once per entry.
pub fn devices(appended: Vec<Appended>) -> Vec<String> {
    appended.into_iter().map(|a| a.device_id).collect()
}

/// Entries after `after`, oldest first, never expired ones.
pub async fn read(
    db: &impl Db,
    device: &DeviceId,
    after: i64,
    limit: i64,
) -> Result<Vec<InboxEntry>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT i.position, i.kind, i.group_id, i.seq, m.epoch,
                    COALESCE(i.receipt_user, m.sender_user), COALESCE(i.receipt_device, m.sender_device),
                    CASE i.kind WHEN 1 THEN m.payload WHEN 2 THEN m.welcome END,
                    m.created_at, i.expires_at
             FROM inbox i JOIN group_messages m ON m.group_id = i.group_id AND m.seq = i.seq
             WHERE i.device_id = $1 AND i.position > $2 AND (i.expires_at IS NULL OR i.expires_at > now())
             ORDER BY i.position LIMIT $3",
        )
        .await?;
    let rows = db.query(&stmt, &[&device.as_str(), &after, &limit]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let kind = match row.get::<_, i16>(1) {
                KIND_MESSAGE => InboxEntryKind::Message,
                KIND_WELCOME => InboxEntryKind::Welcome,
                _ => InboxEntryKind::Receipt,
            };
            Some(InboxEntry {
                cursor: row.get(0),
                kind,
                group_id: GroupId::parse(row.get(2)).ok()?,
                seq: row.get(3),
                epoch: u64::try_from(row.get::<_, i64>(4)).ok()?,
                sender: GroupMember {
                    user_id: UserId::parse(row.get(5)).ok()?,
                    device_id: DeviceId::parse(row.get(6)).ok()?,
                },
                payload: row.get::<_, Option<Vec<u8>>>(7).map(Into::into),
                sent_at: row.get(8),
                expires_at: row.get(9),
            })
        })
        .collect())
}

/// Deletes entries up to `up_to`; returns the messages (not welcomes or receipts) among
/// them that other devices sent, for delivery receipts.
pub async fn ack(db: &impl Db, device: &DeviceId, up_to: i64) -> Result<Vec<AckedMessage>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH gone AS (DELETE FROM inbox WHERE device_id = $1 AND position <= $2 RETURNING kind, group_id, seq)
             SELECT g.group_id, g.seq, m.sender_user, m.sender_device FROM gone g
             JOIN group_messages m ON m.group_id = g.group_id AND m.seq = g.seq
             WHERE g.kind = 1 AND m.sender_device <> $1",
        )
        .await?;
    let rows = db.query(&stmt, &[&device.as_str(), &up_to]).await?;
    Ok(rows
        .iter()
        .map(|r| AckedMessage {
            group_id: r.get(0),
            seq: r.get(1),
            sender_user: r.get(2),
            sender_device: r.get(3),
        })
        .collect())
}

/// The highest position handed out to this device so far.
pub async fn last_position(db: &impl Db, device: &DeviceId) -> Result<i64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT inbox_position FROM devices WHERE device_id = $1")
        .await?;
    Ok(db.query_opt(&stmt, &[&device.as_str()]).await?.map_or(0, |r| r.get(0)))
}

/// The highest position handed out to each of these devices; `None` for a device that
/// no longer exists. One query for any number of devices.
pub async fn last_positions(
    db: &impl Db,
    devices: &[String],
) -> Result<Vec<(String, Option<i64>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT w.device_id, d.inbox_position FROM unnest($1::text[]) AS w(device_id)
             LEFT JOIN devices d ON d.device_id = w.device_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&devices])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

pub async fn delete_expired(db: &impl Db) -> Result<u64, tokio_postgres::Error> {
    let stmt = db.prepare_cached("DELETE FROM inbox WHERE expires_at <= now()").await?;
    db.execute(&stmt, &[]).await
}

/// Entries not yet acknowledged, over all devices.
/// PostgreSQL's estimate of the inbox's rows (kept by autovacuum and ANALYZE), without
/// reading them; 0 before the table was first analyzed.
pub async fn estimated_depth(db: &impl Db) -> Result<i64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'inbox'::regclass")
        .await?;
    Ok(db.query_one(&stmt, &[]).await?.get(0))
}
