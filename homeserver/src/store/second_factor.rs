//! The second factor's rows: `second_factors` and `second_factor_recovery_codes`.

use parley_specs::Localpart;

use super::Db;

pub struct SecondFactorRow {
    pub secret_sealed: Vec<u8>,
    pub confirmed_at: Option<time::OffsetDateTime>,
}

pub async fn get(db: &impl Db, localpart: &Localpart) -> Result<Option<SecondFactorRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT secret_sealed, confirmed_at FROM second_factors WHERE localpart = $1")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart.as_str()])
        .await?
        .map(|row| SecondFactorRow {
            secret_sealed: row.get(0),
            confirmed_at: row.get(1),
        }))
}

/// Stores a pending enrolment, replacing a pending one; false (nothing changed) when the
/// account's second factor is already confirmed.
pub async fn begin_enrolment(
    db: &impl Db,
    localpart: &Localpart,
    sealed: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO second_factors (localpart, secret_sealed) VALUES ($1, $2)
             ON CONFLICT (localpart) DO UPDATE
                SET secret_sealed = EXCLUDED.secret_sealed, created_at = now(), last_used_step = 0
                WHERE second_factors.confirmed_at IS NULL",
        )
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str(), &sealed]).await? == 1)
}

/// Confirms the pending enrolment whose secret is `sealed` (not one that replaced it
/// meanwhile), recording `step` as used, with the recovery codes' hashes; false when
/// there is no such pending enrolment.
pub async fn confirm(
    db: &impl Db,
    localpart: &Localpart,
    sealed: &[u8],
    step: i64,
    recovery_hashes: &[Vec<u8>],
) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE second_factors SET confirmed_at = now(), last_used_step = $3
             WHERE localpart = $1 AND secret_sealed = $2 AND confirmed_at IS NULL",
        )
        .await?;
    if db.execute(&stmt, &[&localpart.as_str(), &sealed, &step]).await? != 1 {
        return Ok(false);
    }
    let delete = db
        .prepare_cached("DELETE FROM second_factor_recovery_codes WHERE localpart = $1")
        .await?;
    db.execute(&delete, &[&localpart.as_str()]).await?;
    let insert = db
        .prepare_cached(
            "INSERT INTO second_factor_recovery_codes (localpart, code_hash) SELECT $1, unnest($2::bytea[])",
        )
        .await?;
    db.execute(&insert, &[&localpart.as_str(), &recovery_hashes]).await?;
    Ok(true)
}

/// Records a TOTP code of `step` as used: false when a code of that step or a later one
/// was accepted before (a replay), or the second factor is not confirmed.
pub async fn use_step(db: &impl Db, localpart: &Localpart, step: i64) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE second_factors SET last_used_step = $2
             WHERE localpart = $1 AND confirmed_at IS NOT NULL AND last_used_step < $2",
        )
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str(), &step]).await? == 1)
}

/// Marks the unused recovery code with this hash used; false when there is none.
pub async fn use_recovery_code(
    db: &impl Db,
    localpart: &Localpart,
    hash: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE second_factor_recovery_codes SET used_at = now()
             WHERE localpart = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str(), &hash]).await? == 1)
}

pub async fn recovery_codes_left(db: &impl Db, localpart: &Localpart) -> Result<i64, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT count(*) FROM second_factor_recovery_codes WHERE localpart = $1 AND used_at IS NULL")
        .await?;
    Ok(db.query_one(&stmt, &[&localpart.as_str()]).await?.get(0))
}

/// Deletes the account's second factor (confirmed or pending) and its recovery codes;
/// false when it had none.
pub async fn delete(db: &impl Db, localpart: &Localpart) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("DELETE FROM second_factors WHERE localpart = $1")
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str()]).await? == 1)
}
