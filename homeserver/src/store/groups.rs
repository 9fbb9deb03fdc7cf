use std::collections::BTreeSet;

use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, GroupId, UserId};
use time::OffsetDateTime;

use super::Db;

pub const KIND_COMMIT: i16 = 1;
pub const KIND_APPLICATION: i16 = 2;

pub struct LockedGroup {
    pub epoch: u64,
    pub last_seq: i64,
}

/// What a previous submit with the same transaction id got.
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
    pub expires_at: Option<OffsetDateTime>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// False when a group with this id exists.
pub async fn insert(db: &impl Db, group: &GroupId, epoch: u64, state: &[u8]) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO groups (group_id, epoch, public_state) VALUES ($1, $2, $3) ON CONFLICT (group_id) DO NOTHING",
        )
        .await?;
    Ok(db.execute(&stmt, &[&group.as_str(), &to_i64(epoch), &state]).await? == 1)
}

/// Locks the group's row for the rest of the transaction: the hub's ordering point.
pub async fn lock(db: &impl Db, group: &GroupId) -> Result<Option<LockedGroup>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT epoch, last_seq FROM groups WHERE group_id = $1 FOR UPDATE")
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str()]).await?.map(|row| LockedGroup {
        epoch: to_u64(row.get(0)),
        last_seq: row.get(1),
    }))
}

/// Takes the group's next sequence number, locking its row for the rest of the
/// transaction; returns the epoch and the new number.
pub async fn next_seq(db: &impl Db, group: &GroupId) -> Result<Option<LockedGroup>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE groups SET last_seq = last_seq + 1 WHERE group_id = $1 RETURNING epoch, last_seq")
        .await?;
    Ok(db.query_opt(&stmt, &[&group.as_str()]).await?.map(|row| LockedGroup {
        epoch: to_u64(row.get(0)),
        last_seq: row.get(1),
    }))
}

pub async fn public_state(db: &impl Db, group: &GroupId) -> Result<Vec<u8>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT public_state FROM groups WHERE group_id = $1")
        .await?;
    Ok(db.query_one(&stmt, &[&group.as_str()]).await?.get(0))
}

/// Records an accepted commit: the new epoch, sequence number and public state.
pub async fn set_state(
    db: &impl Db,
    group: &GroupId,
    epoch: u64,
    last_seq: i64,
    state: &[u8],
) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE groups SET epoch = $2, last_seq = $3, public_state = $4 WHERE group_id = $1")
        .await?;
    db.execute(&stmt, &[&group.as_str(), &to_i64(epoch), &last_seq, &state])
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

pub async fn prior_submit(
    db: &impl Db,
    device: &DeviceId,
    txn_id: &str,
) -> Result<Option<PriorSubmit>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT group_id, seq, epoch + CASE kind WHEN 1 THEN 1 ELSE 0 END
             FROM group_messages WHERE sender_device = $1 AND txn_id = $2",
        )
        .await?;
    Ok(db
        .query_opt(&stmt, &[&device.as_str(), &txn_id])
        .await?
        .map(|row| PriorSubmit {
            group_id: row.get(0),
            seq: row.get(1),
            epoch_after: to_u64(row.get(2)),
        }))
}

/// Stores the message; false when this device already sent one with this `txn_id`.
pub async fn insert_message(db: &impl Db, m: &NewMessage<'_>) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO group_messages
                 (group_id, seq, epoch, kind, sender_user, sender_device, txn_id, payload, welcome, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (sender_device, txn_id) DO NOTHING",
        )
        .await?;
    let inserted = db
        .execute(
            &stmt,
            &[
                &m.group_id.as_str(),
                &m.seq,
                &to_i64(m.epoch),
                &m.kind,
                &m.sender.user_id.as_str(),
                &m.sender.device_id.as_str(),
                &m.txn_id,
                &m.payload,
                &m.welcome,
                &m.expires_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Deletes messages whose time has passed; their inbox entries go with `inbox::delete_expired`.
pub async fn delete_expired(db: &impl Db) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM group_messages WHERE expires_at <= now()")
        .await?;
    db.execute(&stmt, &[]).await
}
