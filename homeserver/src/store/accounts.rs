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
