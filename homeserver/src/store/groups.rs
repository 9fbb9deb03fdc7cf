use std::collections::{BTreeSet, HashMap};

use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, GroupId, UserId};
use time::OffsetDateTime;

use super::Db;

pub const KIND_COMMIT: i16 = 1;
pub const KIND_APPLICATION: i16 = 2;

pub struct LockedGroup {
    pub epoch: u64,
    pub last_seq: i64,
    /// Revoked devices of this server that still have a leaf (`revoked_members`).
    pub revoked: Vec<GroupMember>,
    /// No application message for an epoch before this one (`min_epoch`).
    pub min_epoch: u64,
    /// Users who left and whose leaves no commit removed yet (`leaving_users`).
    pub leaving: Vec<String>,
}

/// The devices of a `revoked_members` value.
fn revoked_from(value: Option<serde_json::Value>) -> Vec<GroupMember> {
    value.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

/// What a previous submit with the same transaction id got.
#[derive(Clone)]
pub struct PriorSubmit {
    pub group_id: String,
    pub seq: i64,
    pub epoch_after: u64,
}

pub struct NewMessage<'a> {
    pub group_id: &'a GroupId,
    pub seq: i64,
    pub epoch: u64,
    pub kind: i16,
    pub sender: &'a GroupMember,
    pub txn_id: &'a str,
    pub payload: &'a [u8],
    pub welcome: Option<&'a [u8]>,
    /// With a commit: the member devices after it.
    pub members: Option<&'a [GroupMember]>,
    pub sent_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// A stored message, as a hub sends it to followers.
pub struct StoredMessage {
    pub group_id: String,
    pub seq: i64,
    pub epoch: u64,
    pub kind: i16,
    pub sender_user: String,
    pub sender_device: String,
    pub payload: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
    pub members: Option<serde_json::Value>,
    pub sent_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
}

/// The identity of a submit for idempotency: group, sender user, sender device, txn id.
pub type SubmitKey = (String, String, String, String);

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// False when a group with this id exists.
pub async fn insert(
    db: &impl Db,
    group: &GroupId,
    epoch: u64,
    state: &[u8],
    group_info: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO groups (group_id, epoch, public_state, group_info) VALUES ($1, $2, $3, $4)
             ON CONFLICT (group_id) DO NOTHING",
        )
        .await?;
    Ok(db
        .execute(&stmt, &[&group.as_str(), &to_i64(epoch), &state, &group_info])
        .await?
        == 1)
}

/// A hubbed group's current epoch, public state and GroupInfo (read together, so they
/// describe one epoch); `None` for a group that is not hubbed here.
pub struct GroupInfoRow {
    pub epoch: u64,
    pub public_state: Vec<u8>,
    pub group_info: Option<Vec<u8>>,
}

pub async fn group_info(db: &impl Db, group: &GroupId) -> Result<Option<GroupInfoRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT epoch, public_state, group_info FROM groups WHERE group_id = $1 AND public_state IS NOT NULL",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str()]).await?.map(|row| GroupInfoRow {
        epoch: to_u64(row.get(0)),
        public_state: row.get(1),
        group_info: row.get(2),
    }))
}

/// Whether any device of `user` is a member of the group.
pub async fn has_user(db: &impl Db, group: &GroupId, user: &UserId) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2 LIMIT 1")
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str(), &user.as_str()]).await?.is_some())
}

/// Groups (hubbed here or followed) in which another device of `who`'s user is a member
/// and `who` is not.
pub async fn joinable_by(db: &impl Db, who: &GroupMember) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT DISTINCT m.group_id FROM group_members m
             WHERE m.user_id = $1 AND NOT EXISTS (
                 SELECT 1 FROM group_members s WHERE s.group_id = m.group_id AND s.user_id = $1 AND s.device_id = $2)
             ORDER BY m.group_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&who.user_id.as_str(), &who.device_id.as_str()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Locks the group's row for the rest of the transaction: the hub's ordering point.
pub async fn lock(db: &impl Db, group: &GroupId) -> Result<Option<LockedGroup>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT epoch, last_seq, revoked_members, min_epoch, leaving_users FROM groups WHERE group_id = $1 FOR UPDATE",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str()]).await?.map(|row| LockedGroup {
        epoch: to_u64(row.get(0)),
        last_seq: row.get(1),
        revoked: revoked_from(row.get(2)),
        min_epoch: to_u64(row.get(3)),
        leaving: row.get(4),
    }))
}

/// Locks the rows of these groups, in id order as every writer does, and returns the
/// ones that exist.
pub async fn lock_many(db: &impl Db, groups: &[&str]) -> Result<Vec<(String, LockedGroup)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT group_id, epoch, last_seq, revoked_members, min_epoch, leaving_users FROM groups
             WHERE group_id = ANY($1) ORDER BY group_id FOR UPDATE",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&groups])
        .await?
        .iter()
        .map(|row| {
            let locked = LockedGroup {
                epoch: to_u64(row.get(1)),
                last_seq: row.get(2),
                revoked: revoked_from(row.get(3)),
                min_epoch: to_u64(row.get(4)),
                leaving: row.get(5),
            };
            (row.get(0), locked)
        })
        .collect())
}

/// Sets each group's last sequence number; the rows must be locked by this transaction.
pub async fn set_last_seqs(db: &impl Db, last_seqs: &[(&str, i64)]) -> Result<u64, tokio_postgres::Error> {
    let (groups, seqs): (Vec<&str>, Vec<i64>) = last_seqs.iter().copied().unzip();
    let stmt = db
        .prepare_cached(
            // `= ANY($1)` lets the plan find the rows by key whatever the table's size was
            // when it was cached (a join alone was planned as a scan of every group).
            "UPDATE groups g SET last_seq = n.last_seq
             FROM unnest($1::text[], $2::int8[]) AS n(group_id, last_seq)
             WHERE g.group_id = n.group_id AND g.group_id = ANY($1)",
        )
        .await?;
    db.execute(&stmt, &[&groups, &seqs]).await
}

pub async fn public_state(db: &impl Db, group: &GroupId) -> Result<Vec<u8>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT public_state FROM groups WHERE group_id = $1")
        .await?;
    Ok(db.query_one(&stmt, &[&group.as_str()]).await?.get(0))
}

/// Records an accepted commit: the new epoch, sequence number, public state and GroupInfo.
pub async fn set_state(
    db: &impl Db,
    group: &GroupId,
    epoch: u64,
    last_seq: i64,
    state: &[u8],
    group_info: &[u8],
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE groups SET epoch = $2, last_seq = $3, public_state = $4, group_info = $5 WHERE group_id = $1",
        )
        .await?;
    db.execute(
        &stmt,
        &[&group.as_str(), &to_i64(epoch), &last_seq, &state, &group_info],
    )
    .await?;
    Ok(())
}

pub async fn replace_members(
    db: &impl Db,
    group: &GroupId,
    members: &BTreeSet<GroupMember>,
) -> Result<(), tokio_postgres::Error> {
    let delete = db
        .prepare_cached("DELETE FROM group_members WHERE group_id = $1")
        .await?;
    db.execute(&delete, &[&group.as_str()]).await?;
    let users: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let devices: Vec<&str> = members.iter().map(|m| m.device_id.as_str()).collect();
    let insert = db
        .prepare_cached(
            "INSERT INTO group_members (group_id, user_id, device_id) SELECT $1, * FROM unnest($2::text[], $3::text[])",
        )
        .await?;
    db.execute(&insert, &[&group.as_str(), &users, &devices]).await?;
    Ok(())
}

pub async fn is_member(db: &impl Db, group: &GroupId, who: &GroupMember) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2 AND device_id = $3")
        .await?;
    Ok(db
        .query_opt(
            &stmt,
            &[&group.as_str(), &who.user_id.as_str(), &who.device_id.as_str()],
        )
        .await?
        .is_some())
}

/// The device that sent message `seq` of the group, when it is still stored here.
pub async fn message_sender(db: &impl Db, group: &str, seq: i64) -> Result<Option<GroupMember>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT sender_user, sender_device FROM group_messages WHERE group_id = $1 AND seq = $2")
        .await?;
    let Some(row) = db.query_opt(&stmt, &[&group, &seq]).await? else {
        return Ok(None);
    };
    let (user, device): (String, String) = (row.get(0), row.get(1));
    Ok(match (UserId::parse(&user), DeviceId::parse(&device)) {
        (Ok(user_id), Ok(device_id)) => Some(GroupMember { user_id, device_id }),
        _ => None,
    })
}

pub async fn members(db: &impl Db, group: &GroupId) -> Result<Vec<GroupMember>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT user_id, device_id FROM group_members WHERE group_id = $1 ORDER BY user_id, device_id")
        .await?;
    let rows = db.query(&stmt, &[&group.as_str()]).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(GroupMember {
                user_id: UserId::parse(row.get(0)).ok()?,
                device_id: DeviceId::parse(row.get(1)).ok()?,
            })
        })
        .collect())
}

/// The members of each of these groups.
pub async fn members_of_many(
    db: &impl Db,
    groups: &[&str],
) -> Result<HashMap<String, Vec<GroupMember>>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT group_id, user_id, device_id FROM group_members WHERE group_id = ANY($1)")
        .await?;
    let mut members: HashMap<String, Vec<GroupMember>> = HashMap::new();
    for row in db.query(&stmt, &[&groups]).await? {
        let (Ok(user_id), Ok(device_id)) = (UserId::parse(row.get(1)), DeviceId::parse(row.get(2))) else {
            continue;
        };
        members
            .entry(row.get(0))
            .or_default()
            .push(GroupMember { user_id, device_id });
    }
    Ok(members)
}

/// Epoch and last sequence number of a group.
pub async fn position(db: &impl Db, group: &GroupId) -> Result<Option<(u64, i64)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT epoch, last_seq FROM groups WHERE group_id = $1")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&group.as_str()])
        .await?
        .map(|row| (to_u64(row.get(0)), row.get(1))))
}

/// Groups in which this device is a member.
pub async fn of_device(db: &impl Db, who: &GroupMember) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT group_id FROM group_members WHERE device_id = $2 AND user_id = $1 ORDER BY group_id")
        .await?;
    Ok(db
        .query(&stmt, &[&who.user_id.as_str(), &who.device_id.as_str()])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What an earlier submit of this device to this group with this transaction id got.
pub async fn prior_submit(
    db: &impl Db,
    group: &GroupId,
    sender: &GroupMember,
    txn_id: &str,
) -> Result<Option<PriorSubmit>, tokio_postgres::Error> {
    let key = submit_key(group, sender, txn_id);
    let mut found = prior_submits(db, std::slice::from_ref(&key)).await?;
    Ok(found.remove(&key))
}

pub fn submit_key(group: &GroupId, sender: &GroupMember, txn_id: &str) -> SubmitKey {
    (
        group.as_str().to_owned(),
        sender.user_id.as_str().to_owned(),
        sender.device_id.as_str().to_owned(),
        txn_id.to_owned(),
    )
}

/// What earlier submits with these keys got.
pub async fn prior_submits(
    db: &impl Db,
    submitted: &[SubmitKey],
) -> Result<HashMap<SubmitKey, PriorSubmit>, tokio_postgres::Error> {
    let groups: Vec<&str> = submitted.iter().map(|k| k.0.as_str()).collect();
    let users: Vec<&str> = submitted.iter().map(|k| k.1.as_str()).collect();
    let devices: Vec<&str> = submitted.iter().map(|k| k.2.as_str()).collect();
    let txn_ids: Vec<&str> = submitted.iter().map(|k| k.3.as_str()).collect();
    let stmt = db
        .prepare_cached(
            // LATERAL: one probe of the unique index per submit. A plain join let a
            // cached plan, made while the table was small, scan all of it every batch.
            "SELECT s.group_id, s.sender_user, s.sender_device, s.txn_id, m.seq,
                    m.epoch + CASE m.kind WHEN 1 THEN 1 ELSE 0 END
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 AS s(group_id, sender_user, sender_device, txn_id)
             CROSS JOIN LATERAL (
                 SELECT seq, epoch, kind FROM group_messages g
                 WHERE g.group_id = s.group_id AND g.sender_user = s.sender_user
                   AND g.sender_device = s.sender_device AND g.txn_id = s.txn_id) m",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&groups, &users, &devices, &txn_ids])
        .await?
        .iter()
        .map(|row| {
            let prior = PriorSubmit {
                group_id: row.get(0),
                seq: row.get(4),
                epoch_after: to_u64(row.get(5)),
            };
            ((row.get(0), row.get(1), row.get(2), row.get(3)), prior)
        })
        .collect())
}

/// Stores these messages in one statement and returns how many were new: fewer than
/// given when a submit (group, sender, transaction id) was already stored.
pub async fn insert_messages(db: &impl Db, messages: &[NewMessage<'_>]) -> Result<u64, tokio_postgres::Error> {
    let groups: Vec<&str> = messages.iter().map(|m| m.group_id.as_str()).collect();
    let users: Vec<&str> = messages.iter().map(|m| m.sender.user_id.as_str()).collect();
    let devices: Vec<&str> = messages.iter().map(|m| m.sender.device_id.as_str()).collect();
    let txn_ids: Vec<&str> = messages.iter().map(|m| m.txn_id).collect();
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let epochs: Vec<i64> = messages.iter().map(|m| to_i64(m.epoch)).collect();
    let kinds: Vec<i16> = messages.iter().map(|m| m.kind).collect();
    let payloads: Vec<&[u8]> = messages.iter().map(|m| m.payload).collect();
    let welcomes: Vec<Option<&[u8]>> = messages.iter().map(|m| m.welcome).collect();
    let expiries: Vec<Option<OffsetDateTime>> = messages.iter().map(|m| m.expires_at).collect();
    let sent: Vec<OffsetDateTime> = messages.iter().map(|m| m.sent_at).collect();
    let members: Vec<Option<serde_json::Value>> = messages
        .iter()
        .map(|m| m.members.and_then(|members| serde_json::to_value(members).ok()))
        .collect();
    let stmt = db
        .prepare_cached(
            "INSERT INTO group_messages
                 (group_id, seq, epoch, kind, sender_user, sender_device, txn_id, payload, welcome, expires_at,
                  created_at, members)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int2[], $5::text[], $6::text[],
                                  $7::text[], $8::bytea[], $9::bytea[], $10::timestamptz[], $11::timestamptz[],
                                  $12::jsonb[])
             ON CONFLICT (group_id, sender_user, sender_device, txn_id) DO NOTHING",
        )
        .await?;
    db.execute(
        &stmt,
        &[
            &groups, &seqs, &epochs, &kinds, &users, &devices, &txn_ids, &payloads, &welcomes, &expiries, &sent,
            &members,
        ],
    )
    .await
}

/// Deletes messages whose time has passed; their inbox entries go with `inbox::delete_expired`.
pub async fn delete_expired(db: &impl Db) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM group_messages WHERE expires_at <= now()")
        .await?;
    db.execute(&stmt, &[]).await
}

/// Creates the rows of groups hubbed elsewhere that this server has not followed before,
/// starting each just before the first message it receives: (group, last_seq, epoch).
pub async fn follow(db: &impl Db, groups: &[(&str, i64, u64)]) -> Result<u64, tokio_postgres::Error> {
    let ids: Vec<&str> = groups.iter().map(|g| g.0).collect();
    let last_seqs: Vec<i64> = groups.iter().map(|g| g.1).collect();
    let epochs: Vec<i64> = groups.iter().map(|g| to_i64(g.2)).collect();
    let stmt = db
        .prepare_cached(
            "INSERT INTO groups (group_id, last_seq, epoch)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[]) ON CONFLICT (group_id) DO NOTHING",
        )
        .await?;
    db.execute(&stmt, &[&ids, &last_seqs, &epochs]).await
}

/// Sets each group's epoch and last sequence number; the rows must be locked by this
/// transaction.
pub async fn set_positions(db: &impl Db, positions: &[(&str, u64, i64)]) -> Result<u64, tokio_postgres::Error> {
    let ids: Vec<&str> = positions.iter().map(|p| p.0).collect();
    let epochs: Vec<i64> = positions.iter().map(|p| to_i64(p.1)).collect();
    let last_seqs: Vec<i64> = positions.iter().map(|p| p.2).collect();
    let stmt = db
        .prepare_cached(
            "UPDATE groups g SET epoch = n.epoch, last_seq = n.last_seq
             FROM unnest($1::text[], $2::int8[], $3::int8[]) AS n(group_id, epoch, last_seq)
             WHERE g.group_id = n.group_id",
        )
        .await?;
    db.execute(&stmt, &[&ids, &epochs, &last_seqs]).await
}

pub(super) const STORED_COLUMNS: &str = "m.group_id, m.seq, m.epoch, m.kind, m.sender_user, m.sender_device, m.payload, \
                              m.welcome, m.members, m.created_at, m.expires_at";

/// A `StoredMessage` from the `STORED_COLUMNS` starting at column `at`.
pub(super) fn stored_from(row: &tokio_postgres::Row, at: usize) -> StoredMessage {
    StoredMessage {
        group_id: row.get(at),
        seq: row.get(at + 1),
        epoch: to_u64(row.get(at + 2)),
        kind: row.get(at + 3),
        sender_user: row.get(at + 4),
        sender_device: row.get(at + 5),
        payload: row.get(at + 6),
        welcome: row.get(at + 7),
        members: row.get(at + 8),
        sent_at: row.get(at + 9),
        expires_at: row.get(at + 10),
    }
}

/// A group's messages after `after`, in order (expired ones are gone).
pub async fn messages_after(
    db: &impl Db,
    group: &GroupId,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredMessage>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM group_messages m WHERE m.group_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
        ))
        .await?;
    Ok(db
        .query(&stmt, &[&group.as_str(), &after, &limit])
        .await?
        .iter()
        .map(|row| stored_from(row, 0))
        .collect())
}

/// Whether any device of `server` is a member of the group.
pub async fn has_members_of(db: &impl Db, group: &GroupId, server: &str) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT 1 FROM group_members WHERE group_id = $1 AND split_part(user_id, '@', 2) = $2 LIMIT 1")
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str(), &server]).await?.is_some())
}

/// Marks the groups hubbed here (they have a public state) in which `user`'s `devices`
/// have a leaf: their `revoked_members` gain those devices. Locks the groups in id order
/// (groups before devices, as every writer); the caller revokes the devices in the same
/// transaction. Returns how many groups were marked.
pub async fn mark_revoked(db: &impl Db, user: &UserId, devices: &[&str]) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH hit AS (
                 SELECT g.group_id FROM groups g
                 WHERE g.public_state IS NOT NULL AND g.group_id IN (
                     SELECT group_id FROM group_members WHERE user_id = $1 AND device_id = ANY($2))
                 ORDER BY g.group_id FOR UPDATE OF g)
             UPDATE groups g SET revoked_members = COALESCE(g.revoked_members, '[]'::jsonb) || (
                 SELECT jsonb_agg(jsonb_build_object('user_id', m.user_id, 'device_id', m.device_id))
                 FROM group_members m WHERE m.group_id = g.group_id AND m.user_id = $1 AND m.device_id = ANY($2))
             FROM hit WHERE g.group_id = hit.group_id",
        )
        .await?;
    db.execute(&stmt, &[&user.as_str(), &devices]).await
}

/// Clears a locked group's revoked devices (a commit removed them) and takes application
/// messages only from `min_epoch` on.
pub async fn clear_revoked(db: &impl Db, group: &GroupId, min_epoch: u64) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE groups SET revoked_members = NULL, min_epoch = $2 WHERE group_id = $1")
        .await?;
    db.execute(&stmt, &[&group.as_str(), &to_i64(min_epoch)]).await?;
    Ok(())
}

/// Sets a locked group's users who left and are not removed yet (`leaving_users`).
pub async fn set_leaving(db: &impl Db, group: &GroupId, users: &[String]) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE groups SET leaving_users = $2 WHERE group_id = $1")
        .await?;
    db.execute(&stmt, &[&group.as_str(), &users]).await?;
    Ok(())
}
