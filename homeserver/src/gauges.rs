//! The database-wide gauges of `/metrics`, read from PostgreSQL on a timer rather than
//! at each scrape: a scraper (anyone, on the public port) can then cost the database
//! nothing, and the inbox depth is PostgreSQL's row estimate, not a `count(*)` over every
//! device's entries.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::store;

/// Refreshes the gauges now and every `every` until the process ends; a failed read
/// keeps the last values.
pub async fn refresh_forever(pool: deadpool_postgres::Pool, metrics: Arc<Metrics>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(db) = pool.get().await else { continue };
        if let Ok(users) = store::accounts::count(&db).await {
            metrics.registered_users.set(users);
        }
        if let Ok(depth) = store::inbox::estimated_depth(&db).await {
            metrics.inbox_depth.set(depth);
        }
        if let Ok(destinations) = store::federation::queue_stats(&db).await {
            metrics.observe_federation_queues(&destinations);
        }
    }
}
