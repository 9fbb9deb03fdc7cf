//! The admin API's server statistics: counts across the tables.

use parley_specs::ServerName;
use parley_specs::admin_api::ServerStats;

use super::Db;

/// Exact counts, read in one statement (one snapshot). They scan the tables: fine for an
/// operator's occasional look, not for a dashboard polling every second (`/metrics`).
pub async fn stats(db: &impl Db, server_name: &ServerName) -> Result<ServerStats, tokio_postgres::Error> {
    let stmt = db
        .prepare_cached(
            "SELECT
                (SELECT count(*) FROM accounts),
                (SELECT count(*) FROM accounts WHERE deactivated_at IS NOT NULL),
                (SELECT count(*) FROM devices),
                (SELECT count(*) FROM groups WHERE public_state IS NOT NULL),
                (SELECT count(*) FROM groups WHERE public_state IS NULL),
                (SELECT count(*) FROM group_messages),
                (SELECT count(*) FROM inbox),
                (SELECT count(*) FROM key_packages WHERE NOT last_resort AND expires_at > now()),
                (SELECT count(*) FROM federation_queue),
                (SELECT count(*) FROM federation_destinations),
                pg_database_size(current_database()),
                (SELECT COALESCE(max(version), 0) FROM schema_migrations)",
        )
        .await?;
    let row = db.query_one(&stmt, &[]).await?;
    Ok(ServerStats {
        server_name: server_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        users: row.get(0),
        deactivated_users: row.get(1),
        devices: row.get(2),
        groups_hubbed: row.get(3),
        groups_followed: row.get(4),
        stored_messages: row.get(5),
        undelivered_inbox_entries: row.get(6),
        unclaimed_key_packages: row.get(7),
        federation_queue: row.get(8),
        federation_destinations: row.get(9),
        database_size_bytes: row.get(10),
        schema_version: row.get(11),
    })
}
