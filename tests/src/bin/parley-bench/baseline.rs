//! What PostgreSQL alone does with the rows the hub writes per message: one message row
//! and one inbox row per recipient, one transaction per message, on the same cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub async fn plain_inserts(database_url: &str, fanouts: &[usize], connections: usize) -> anyhow::Result<f64> {
    let (setup, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    setup
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS baseline_messages (group_id TEXT, seq BIGINT, payload BYTEA, PRIMARY KEY (group_id, seq));
             CREATE TABLE IF NOT EXISTS baseline_inbox (device_id TEXT, position BIGINT, group_id TEXT, seq BIGINT,
                                                        PRIMARY KEY (device_id, position));
             TRUNCATE baseline_messages, baseline_inbox;",
        )
        .await?;
    let fanouts = Arc::new(fanouts.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (url, fanouts, next) = (database_url.to_owned(), fanouts.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            let insert_message = client
                .prepare("INSERT INTO baseline_messages VALUES ($1, $2, $3)")
                .await?;
            let insert_inbox = client
                .prepare("INSERT INTO baseline_inbox SELECT d, $2, $3, $4 FROM unnest($1::text[]) AS d")
                .await?;
            let payload = vec![7u8; 200];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&fanout) = fanouts.get(i) else { break };
                let group = format!("g{}", i % 500);
                let seq = i as i64;
                let devices: Vec<String> = (0..fanout).map(|d| format!("{group}d{d}")).collect();
                let tx = client.transaction().await?;
                tx.execute(&insert_message, &[&group, &seq, &payload]).await?;
                tx.execute(&insert_inbox, &[&devices, &seq, &group, &seq]).await?;
                tx.commit().await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(fanouts.len() as f64 / started.elapsed().as_secs_f64())
}
