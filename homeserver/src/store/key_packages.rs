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
            "SELECT
                 (SELECT count(*) FROM key_packages
                  WHERE device_id = $1 AND NOT last_resort AND expires_at > now()),
                 (SELECT bool_or(last_resort) IS TRUE FROM key_packages
                  WHERE device_id = $1 AND expires_at > now()),
                 (SELECT count(*) FROM key_package_claims
                  WHERE device_id = $1 AND claimed_at > now() - interval '1 hour'),
                 (SELECT count(*) FROM key_package_claims
                  WHERE device_id = $1 AND NOT one_time AND claimed_at > now() - interval '1 hour')",
        )
        .await?;
    let row = db.query_one(&stmt, &[&device.as_str()]).await?;
    Ok(KeyPackageCount {
        available: row.get(0),
        last_resort: row.get(1),
        claimed_last_hour: row.get(2),
        last_resort_claimed_last_hour: row.get(3),
    })
}

/// One-time packages of `device` claimed in the last hour: by `claimer`, and by anyone.
pub async fn recent_claims(
    db: &impl Db,
    device: &DeviceId,
    claimer: &str,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE claimer = $2), count(*) FROM key_package_claims
             WHERE device_id = $1 AND one_time AND claimed_at > now() - interval '1 hour'",
        )
        .await?;
    let row = db.query_one(&stmt, &[&device.as_str(), &claimer]).await?;
    Ok((row.get(0), row.get(1)))
}

/// Records a claim of one of `device`'s packages, and forgets its claims over an hour old.
pub async fn record_claim(
    db: &impl Db,
    device: &DeviceId,
    claimer: &str,
    one_time: bool,
) -> Result<(), tokio_postgres::Error> {
    let forget = db
        .prepare_cached(
            "DELETE FROM key_package_claims WHERE device_id = $1 AND claimed_at <= now() - interval '1 hour'",
        )
        .await?;
    db.execute(&forget, &[&device.as_str()]).await?;
    let insert = db
        .prepare_cached("INSERT INTO key_package_claims (device_id, claimer, one_time) VALUES ($1, $2, $3)")
        .await?;
    db.execute(&insert, &[&device.as_str(), &claimer, &one_time]).await?;
    Ok(())
}

/// Deletes and returns the device's oldest unexpired one-time package (if `one_time`),
/// or returns (and keeps) its last-resort one. `SKIP LOCKED`: a concurrent claim takes
/// the next package instead of waiting for, and then sharing, this one.
pub async fn claim_one(
    db: &impl Db,
    device: &DeviceId,
    one_time: bool,
) -> Result<Option<(Vec<u8>, bool)>, tokio_postgres::Error> {
    if one_time && let Some(package) = take_one_time(db, device).await? {
        return Ok(Some((package, false)));
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

async fn take_one_time(db: &impl Db, device: &DeviceId) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let take = db
        .prepare_cached(
            "DELETE FROM key_packages WHERE id = (
                 SELECT id FROM key_packages
                 WHERE device_id = $1 AND NOT last_resort AND expires_at > now()
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key_package",
        )
        .await?;
    Ok(db.query_opt(&take, &[&device.as_str()]).await?.map(|row| row.get(0)))
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
