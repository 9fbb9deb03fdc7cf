use parley_specs::Localpart;

use super::Db;

pub async fn exists(db: &impl Db, localpart: &Localpart) -> Result<bool, tokio_postgres::Error> {
    let stmt = db.prepare_cached("SELECT 1 FROM accounts WHERE localpart = $1").await?;
    Ok(db.query_opt(&stmt, &[&localpart.as_str()]).await?.is_some())
}

/// Inserts the account; false when the name is taken (concurrent registrations race
/// here, and exactly one wins).
pub async fn insert(db: &impl Db, localpart: &Localpart, password_hash: &str) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "INSERT INTO accounts (localpart, password_hash) VALUES ($1, $2) ON CONFLICT (localpart) DO NOTHING",
        )
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str(), &password_hash]).await? == 1)
}

pub async fn password_hash(db: &impl Db, localpart: &Localpart) -> Result<Option<String>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT password_hash FROM accounts WHERE localpart = $1")
        .await?;
    Ok(db.query_opt(&stmt, &[&localpart.as_str()]).await?.map(|row| row.get(0)))
}

pub async fn set_password_hash(db: &impl Db, localpart: &Localpart, hash: &str) -> Result<(), tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("UPDATE accounts SET password_hash = $2 WHERE localpart = $1")
        .await?;
    db.execute(&stmt, &[&localpart.as_str(), &hash]).await?;
    Ok(())
}

pub async fn count(db: &impl Db) -> Result<i64, tokio_postgres::Error> {
    let stmt = db.prepare_cached("SELECT count(*) FROM accounts").await?;
    Ok(db.query_one(&stmt, &[]).await?.get(0))
}

/// What a login needs: the password hash and whether the account is deactivated.
pub async fn login_state(db: &impl Db, localpart: &Localpart) -> Result<Option<(String, bool)>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT password_hash, deactivated_at IS NOT NULL FROM accounts WHERE localpart = $1")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart.as_str()])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Whether the account exists and is active, holding a share lock on its row for the
/// rest of the transaction: a deactivation (which updates the row) waits for it, and a
/// login waiting on a deactivation sees it.
pub async fn lock_active(db: &impl Db, localpart: &Localpart) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached("SELECT deactivated_at IS NULL FROM accounts WHERE localpart = $1 FOR SHARE")
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart.as_str()])
        .await?
        .is_some_and(|row| row.get(0)))
}

/// An account as the admin API shows it.
pub struct AccountRow {
    pub localpart: String,
    pub created_at: time::OffsetDateTime,
    pub deactivated_at: Option<time::OffsetDateTime>,
    pub devices: i64,
}

const ACCOUNT_COLUMNS: &str = "a.localpart, a.created_at, a.deactivated_at,
    (SELECT count(*) FROM devices d WHERE d.localpart = a.localpart)";

fn account_row(row: &tokio_postgres::Row) -> AccountRow {
    AccountRow {
        localpart: row.get(0),
        created_at: row.get(1),
        deactivated_at: row.get(2),
        devices: row.get(3),
    }
}

/// Accounts in localpart order after `after`, whose localpart contains `search`.
pub async fn list(
    db: &impl Db,
    search: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AccountRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a
             WHERE ($1::text IS NULL OR strpos(a.localpart, $1) > 0)
               AND ($2::text IS NULL OR a.localpart > $2)
             ORDER BY a.localpart LIMIT $3"
        ))
        .await?;
    Ok(db
        .query(&stmt, &[&search, &after, &limit])
        .await?
        .iter()
        .map(account_row)
        .collect())
}

pub async fn get(db: &impl Db, localpart: &Localpart) -> Result<Option<AccountRow>, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.localpart = $1"
        ))
        .await?;
    Ok(db
        .query_opt(&stmt, &[&localpart.as_str()])
        .await?
        .as_ref()
        .map(account_row))
}

/// Marks the account deactivated (keeping the first time) or active again; false when
/// there is no such account.
pub async fn set_deactivated(
    db: &impl Db,
    localpart: &Localpart,
    deactivated: bool,
) -> Result<bool, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "UPDATE accounts SET deactivated_at = CASE WHEN $2 THEN COALESCE(deactivated_at, now()) END
             WHERE localpart = $1",
        )
        .await?;
    Ok(db.execute(&stmt, &[&localpart.as_str(), &deactivated]).await? == 1)
}
