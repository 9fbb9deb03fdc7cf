use parley_specs::DeviceId;
use parley_specs::keys_api::KeyPackageCount;

use super::Db;

/// A checked KeyPackage to store (the domain checks it; see `key_packages::validate`).
pub struct NewKeyPackage<'a> {
    pub bytes: &'a [u8],
    pub hash_ref: &'a [u8],
    pub last_resort: bool,
    pub expires_at: time::OffsetDateTime,
}

/// Takes a row lock on the device for the rest of the transaction.
pub async fn lock_device(db: &impl Db, device: &DeviceId) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE")
        .await?;
    db.query_opt(&stmt, &[&device.as_str()]).await?;
    Ok(())
}

/// Stores a package; a last-resort one replaces the device's previous one. Storing the
/// same package again changes nothing.
pub async fn insert(db: &impl Db, device: &DeviceId, package: &NewKeyPackage<'_>) -> Result<(), tokio_postgres::Error> {
    if package.last_resort {
        let stmt = db
            .prepare_cached("DELETE FROM key_packages WHERE device_id = $1 AND last_resort AND hash_ref <> $2")
            .await?;
        db.execute(&stmt, &[&device.as_str(), &package.hash_ref]).await?;
    }
    let stmt = db
        .prepare_cached(
            "INSERT INTO key_packages (device_id, hash_ref, key_package, last_resort, expires_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash_ref) DO NOTHING",
        )
        .await?;
    db.execute(
        &stmt,
        &[
            &device.as_str(),
            &package.hash_ref,
            &package.bytes,
            &package.last_resort,
            &package.expires_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn count(db: &impl Db, device: &DeviceId) -> Result<KeyPackageCount, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE NOT last_resort), bool_or(last_resort) IS TRUE
             FROM key_packages WHERE device_id = $1 AND expires_at > now()",
        )
        .await?;
    let row = db.query_one(&stmt, &[&device.as_str()]).await?;
    Ok(KeyPackageCount {
        available: row.get(0),
        last_resort: row.get(1),
    })
}

/// Deletes and returns the device's oldest unexpired one-time package, or returns (and
/// keeps) its last-resort one. `SKIP LOCKED`: a concurrent claim takes the next package
/// instead of waiting for, and then sharing, this one.
pub async fn claim_one(db: &impl Db, device: &DeviceId) -> Result<Option<(Vec<u8>, bool)>, tokio_postgres::Error> {
    let take = db
        .prepare_cached(
            "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE device_id = $1 AND NOT last_resort AND expires_at > now()
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key_package",
        )
        .await?;
    if let Some(row) = db.query_opt(&take, &[&device.as_str()]).await? {
        return Ok(Some((row.get(0), false)));
    }
    let last_resort = db
        .prepare_cached(
            "SELECT key_package FROM key_packages WHERE device_id = $1 AND last_resort AND expires_at > now()",
        )
        .await?;
    Ok(db
        .query_opt(&last_resort, &[&device.as_str()])
        .await?
        .map(|row| (row.get(0), true)))
}

/// Deletes every KeyPackage of the account's devices (claimable or last-resort).
pub async fn delete_of_account(
    db: &impl Db,
    localpart: &parley_specs::Localpart,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM key_packages WHERE device_id IN (SELECT device_id FROM devices WHERE localpart = $1)",
        )
        .await?;
    db.execute(&stmt, &[&localpart.as_str()]).await
}
