use super::Db;

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
