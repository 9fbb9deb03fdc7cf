use parley_specs::{DeviceId, Localpart};
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::Db;

pub struct DeviceRow {
    pub device_id: String,
    pub display_name: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

impl From<Row> for DeviceRow {
    fn from(row: Row) -> Self {
        Self {
            device_id: row.get("device_id"),
            display_name: row.get("display_name"),
            created_at: row.get("created_at"),
            last_seen_at: row.get("last_seen_at"),
        }
    }
}

/// The device an access token belongs to.
pub struct TokenOwner {
    pub localpart: String,
    pub device_id: String,
    pub token_hash: Vec<u8>,
    /// last_seen_at is more than a minute old and worth refreshing.
    pub seen_stale: bool,
}

pub async fn insert(
    db: &impl Db,
    localpart: &Localpart,
    device_id: &DeviceId,
    display_name: &str,
    token_hash: &[u8],
    signature_key: Option<&[u8]>,
) -> Result<(), tokio_postgres::Error> {
    // A device created with its key changes the account's published devices: marked for
    // the next transparency epoch in the same statement.
    let stmt = db
        .prepare_cached(
            "WITH created AS (INSERT INTO devices (device_id, localpart, display_name, token_hash, mls_signature_key) \
                              VALUES ($1, $2, $3, $4, $5) RETURNING localpart, mls_signature_key), \
                  marked AS (INSERT INTO transparency_pending (localpart, change_seq) \
                             SELECT localpart, nextval('transparency_change_seq') FROM created \
                             WHERE mls_signature_key IS NOT NULL \
                             ON CONFLICT (localpart) DO UPDATE SET change_seq = EXCLUDED.change_seq) \
             SELECT 1",
        )
        .await?;
    db.execute(
        &stmt,
        &[
            &device_id.as_str(),
            &localpart.as_str(),
            &display_name,
            &token_hash,
            &signature_key,
        ],
    )
    .await?;
    Ok(())
}

pub async fn by_token_hash(db: &impl Db, token_hash: &[u8]) -> Result<Option<TokenOwner>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT localpart, device_id, token_hash, last_seen_at < now() - interval '1 minute' AS stale
             FROM devices WHERE token_hash = $1",
        )
        .await?;
    Ok(db.query_opt(&stmt, &[&token_hash]).await?.map(|row| TokenOwner {
        localpart: row.get(0),
        device_id: row.get(1),
        token_hash: row.get(2),
        seen_stale: row.get(3),
    }))
}

pub async fn touch(db: &impl Db, device_id: &DeviceId) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE devices SET last_seen_at = now() WHERE device_id = $1")
        .await?;
    db.execute(&stmt, &[&device_id.as_str()]).await?;
    Ok(())
}

pub async fn list(db: &impl Db, localpart: &Localpart) -> Result<Vec<DeviceRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT device_id, display_name, created_at, last_seen_at FROM devices
             WHERE localpart = $1 ORDER BY created_at, device_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localpart.as_str()])
        .await?
        .into_iter()
        .map(DeviceRow::from)
        .collect())
}

/// Renames a device of this account; None when it has no such device.
pub async fn rename(
    db: &impl Db,
    localpart: &Localpart,
    device_id: &DeviceId,
    display_name: &str,
) -> Result<Option<DeviceRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE devices SET display_name = $3 WHERE localpart = $1 AND device_id = $2
             RETURNING device_id, display_name, created_at, last_seen_at",
        )
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart.as_str(), &device_id.as_str(), &display_name])
        .await?
        .map(DeviceRow::from))
}

/// Deletes these devices of the account; returns the ones that were there. When one had
/// a key, the account's device list changed: it is marked for the next transparency epoch
/// in the same statement.
pub async fn delete_many(
    db: &impl Db,
    localpart: &Localpart,
    ids: &[&str],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH gone AS (DELETE FROM devices WHERE localpart = $1 AND device_id = ANY($2) \
                           RETURNING device_id, mls_signature_key), \
                  marked AS (INSERT INTO transparency_pending (localpart, change_seq) \
                             SELECT $1, nextval('transparency_change_seq') \
                             WHERE EXISTS (SELECT 1 FROM gone WHERE mls_signature_key IS NOT NULL) \
                             ON CONFLICT (localpart) DO UPDATE SET change_seq = EXCLUDED.change_seq) \
             SELECT device_id FROM gone",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localpart.as_str(), &ids])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The account's devices except `keep` (all of them when `keep` is None).
pub async fn ids_except(
    db: &impl Db,
    localpart: &Localpart,
    keep: Option<&DeviceId>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT device_id FROM devices WHERE localpart = $1 AND device_id IS DISTINCT FROM $2")
        .await?;
    Ok(db
        .query(&stmt, &[&localpart.as_str(), &keep.map(DeviceId::as_str)])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// A device as the admin API shows it, with what waits for and from it.
pub struct AdminDeviceRow {
    pub device: DeviceRow,
    pub unclaimed_key_packages: i64,
    pub inbox_entries: i64,
}

pub async fn list_with_counts(
    db: &impl Db,
    localpart: &Localpart,
) -> Result<Vec<AdminDeviceRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT d.device_id, d.display_name, d.created_at, d.last_seen_at,
                    (SELECT count(*) FROM key_packages k
                     WHERE k.device_id = d.device_id AND NOT k.last_resort AND k.expires_at > now()),
                    (SELECT count(*) FROM inbox i WHERE i.device_id = d.device_id)
             FROM devices d WHERE d.localpart = $1 ORDER BY d.created_at, d.device_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localpart.as_str()])
        .await?
        .into_iter()
        .map(|row| AdminDeviceRow {
            unclaimed_key_packages: row.get(4),
            inbox_entries: row.get(5),
            device: DeviceRow::from(row),
        })
        .collect())
}

// The device key directory: each device's MLS signature key, bound once.

/// The MLS signature key bound to `device`, taking the device's row lock for the rest of
/// the transaction: `None` when there is no such device, `Some(None)` when it has no key
/// yet.
pub async fn signature_key_for_update(
    db: &impl Db,
    device: &DeviceId,
) -> Result<Option<Option<Vec<u8>>>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT mls_signature_key FROM devices WHERE device_id = $1 FOR UPDATE")
        .await?;
    Ok(db.query_opt(&stmt, &[&device.as_str()]).await?.map(|row| row.get(0)))
}

/// Binds `key` to a device that has none yet; false when it had one (or does not exist).
/// The account is marked for the next transparency epoch in the same statement.
pub async fn bind_signature_key(db: &impl Db, device: &DeviceId, key: &[u8]) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "WITH bound AS (UPDATE devices SET mls_signature_key = $2 \
                            WHERE device_id = $1 AND mls_signature_key IS NULL RETURNING localpart), \
                  marked AS (INSERT INTO transparency_pending (localpart, change_seq) \
                             SELECT localpart, nextval('transparency_change_seq') FROM bound \
                             ON CONFLICT (localpart) DO UPDATE SET change_seq = EXCLUDED.change_seq) \
             SELECT count(*) FROM bound",
        )
        .await?;
    let bound: i64 = db.query_one(&stmt, &[&device.as_str(), &key]).await?.get(0);
    Ok(bound == 1)
}

/// The account's devices that have a key, with it, by device id.
pub async fn signature_keys(
    db: &impl Db,
    localpart: &Localpart,
) -> Result<Vec<(String, Vec<u8>)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT device_id, mls_signature_key FROM devices
             WHERE localpart = $1 AND mls_signature_key IS NOT NULL ORDER BY device_id",
        )
        .await?;
    Ok(db
        .query(&stmt, &[&localpart.as_str()])
        .await?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

/// A device as the directory knows it.
pub struct DeviceKeyRow {
    pub localpart: String,
    pub device_id: String,
    pub signature_key: Option<Vec<u8>>,
}

/// The owners and keys of those of `devices` that exist.
pub async fn keys_of(db: &impl Db, devices: &[&str]) -> Result<Vec<DeviceKeyRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT localpart, device_id, mls_signature_key FROM devices WHERE device_id = ANY($1)")
        .await?;
    Ok(db
        .query(&stmt, &[&devices])
        .await?
        .into_iter()
        .map(|row| DeviceKeyRow {
            localpart: row.get(0),
            device_id: row.get(1),
            signature_key: row.get(2),
        })
        .collect())
}
