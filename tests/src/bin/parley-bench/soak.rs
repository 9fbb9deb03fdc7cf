//! A database that stops growing: millions of messages through a release homeserver with
//! short retention settings, in 1:1 and group conversations where some devices never read
//! (their inboxes go when they are idle too long) and senders never read their delivery
//! receipts (they go at the receipt age). Prints the database size as messages go
//! through; with retention it levels off.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use parley_homeserver::devcerts::DevCa;
use parley_sdk::{Client, Trust};
use parley_specs::Base64Bytes;
use parley_specs::groups_api::SubmitMessageRequest;
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{BenchGroup, setup_group, txn};
use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct SoakArgs {
    /// Messages to send in all.
    #[arg(long, default_value_t = 5_000_000)]
    messages: u64,
    /// Print the database size every this many messages.
    #[arg(long, default_value_t = 250_000)]
    report_every: u64,
    /// Conversations of two devices.
    #[arg(long, default_value_t = 60)]
    one_to_one: usize,
    /// Group conversations, of --group-size devices each.
    #[arg(long, default_value_t = 6)]
    groups: usize,
    /// Devices in each group conversation (at least 2).
    #[arg(long, default_value_t = 8)]
    group_size: usize,
    /// Every Nth receiving device never reads its inbox (never connects again).
    #[arg(long, default_value_t = 4)]
    silent_every: usize,
    /// Send requests in flight at once.
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
    /// Database connections of the homeserver.
    #[arg(long, default_value_t = 24)]
    pool: usize,
    /// [retention] message_min_age_secs of the homeserver.
    #[arg(long, default_value_t = 10)]
    message_min_age_secs: u64,
    /// [retention] message_max_age_secs.
    #[arg(long, default_value_t = 600)]
    message_max_age_secs: u64,
    /// [retention] device_idle_max_age_secs (the silent devices' inboxes go after it).
    #[arg(long, default_value_t = 40)]
    device_idle_max_age_secs: u64,
    /// [retention] receipt_max_age_secs (senders never read their receipts).
    #[arg(long, default_value_t = 20)]
    receipt_max_age_secs: u64,
    /// [retention] sweep_interval_secs.
    #[arg(long, default_value_t = 2)]
    sweep_interval_secs: u64,
    /// [retention] batch_size.
    #[arg(long, default_value_t = 5000)]
    batch_size: i64,
    /// Stop sending after this many seconds even if --messages were not all sent (the
    /// summary covers what was sent).
    #[arg(long)]
    max_secs: Option<u64>,
    /// Ciphertexts prepared per conversation, sent again and again with new transaction ids.
    #[arg(long, default_value_t = 8)]
    prepared: usize,
}

/// Tables whose size is printed (the others stay small).
const TABLES: &[&str] = &["group_messages", "inbox", "devices", "key_packages"];

pub async fn run(args: SoakArgs) -> anyhow::Result<()> {
    eprintln!("starting a durable PostgreSQL and a release homeserver with short retention ...");
    let ca = DevCa::generate("Parley bench CA")?;
    let retention = serde_json::json!({
        "enabled": true,
        "sweep_interval_secs": args.sweep_interval_secs,
        "batch_size": args.batch_size,
        "batch_pause_ms": 0,
        "message_min_age_secs": args.message_min_age_secs,
        "message_max_age_secs": args.message_max_age_secs,
        "device_idle_max_age_secs": args.device_idle_max_age_secs,
        "receipt_max_age_secs": args.receipt_max_age_secs,
    });
    let server = BenchServer::start_configured(args.pool, &ca, None, |config| {
        config["retention"] = retention.clone();
    })
    .await?;
    let trust = Trust::CaPem(server.ca_pem.clone());
    let target = server.target();
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();
    let sizes: Vec<usize> = std::iter::repeat_n(2, args.one_to_one)
        .chain(std::iter::repeat_n(args.group_size.max(2), args.groups))
        .collect();
    eprintln!(
        "setting up {} conversations ({} devices; real MLS commits and Welcomes) ...",
        sizes.len(),
        sizes.iter().sum::<usize>()
    );
    let groups: Vec<BenchGroup> = futures_util::stream::iter(sizes.iter().enumerate())
        .map(|(g, &size)| {
            setup_group(
                &target,
                &target,
                &trust,
                format!("s{prefix}g{g}"),
                size,
                args.prepared.max(1),
            )
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;

    // Readers: every receiver but every Nth one reads over a WebSocket and acknowledges.
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let receivers: Vec<&Client> = groups.iter().flat_map(|g| g.receivers.iter()).collect();
    let silent_every = args.silent_every.max(1);
    let (mut readers, mut silent) = (Vec::new(), 0);
    for (i, client) in receivers.iter().enumerate() {
        if silent_every > 1 && i % silent_every == silent_every - 1 {
            silent += 1;
            continue;
        }
        readers.push(tokio::spawn(read_forever(
            (*client).clone(),
            stop.clone(),
            delivered.clone(),
        )));
    }
    println!(
        "soak: {} messages; {} conversations of 2 and {} of {}; {} receiving devices of which {silent} never read; \
         senders never read their receipts",
        args.messages,
        args.one_to_one,
        args.groups,
        args.group_size,
        receivers.len()
    );
    println!(
        "retention: message_min_age {} s, message_max_age {} s, device_idle_max_age {} s, receipt_max_age {} s, sweep every {} s, batches of {}",
        args.message_min_age_secs,
        args.message_max_age_secs,
        args.device_idle_max_age_secs,
        args.receipt_max_age_secs,
        args.sweep_interval_secs,
        args.batch_size
    );

    let db = server.db().await?;
    let sent = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let groups = Arc::new(groups);
    let started = Instant::now();
    if let Some(max_secs) = args.max_secs {
        let next = next.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(max_secs)).await;
            next.store(u64::MAX / 2, Ordering::Relaxed);
        });
    }
    let mut senders = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (groups, sent, next, total) = (groups.clone(), sent.clone(), next.clone(), args.messages);
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                let g = &groups[(i % groups.len() as u64) as usize];
                let round = (i / groups.len() as u64) as usize;
                let message = g.prepared[round % g.prepared.len()].clone();
                let req = SubmitMessageRequest {
                    txn_id: txn(),
                    message: Base64Bytes(message),
                    expires_at: None,
                };
                let mut attempt = 0;
                loop {
                    match g.sender.submit_message(&g.id, &req).await {
                        Ok(_) => break,
                        Err(e) if attempt < 5 => {
                            attempt += 1;
                            eprintln!("submit failed ({e}); retrying");
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    println!(
        "{:>10} {:>7} {:>7} {:>10} {:>10} {:>20} {:>20} {:>12}",
        "sent", "secs", "msg/s", "delivered", "db size", "group_messages", "inbox", "receipts"
    );
    let mut samples: Vec<(u64, i64, i64)> = Vec::new();
    let mut threshold = args.report_every.max(1);
    let mut last = (0u64, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done = sent.load(Ordering::Relaxed);
        let finished = senders.iter().all(|s| s.is_finished());
        if done < threshold && !finished {
            continue;
        }
        let sample = measure(&db).await?;
        let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (done, Instant::now());
        println!(
            "{:>10} {:>7.0} {:>7.0} {:>10} {:>10} {:>20} {:>20} {:>12}",
            done,
            started.elapsed().as_secs_f64(),
            rate,
            delivered.load(Ordering::Relaxed),
            mib(sample.database),
            format!("{} rows {}", sample.rows[0], mib(sample.bytes[0])),
            format!("{} rows {}", sample.rows[1], mib(sample.bytes[1])),
            sample.receipts,
        );
        samples.push((done, sample.database, sample.rows[0]));
        while threshold <= done {
            threshold += args.report_every.max(1);
        }
        if finished {
            break;
        }
    }
    for sender in senders {
        sender.await??;
    }
    let elapsed = started.elapsed();
    let final_sample = measure(&db).await?;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.abort();
    }

    // The steady state: the second half of the samples.
    let tail: Vec<&(u64, i64, i64)> = samples.iter().skip(samples.len() / 2).collect();
    let (min, max) = tail
        .iter()
        .fold((i64::MAX, 0i64), |(lo, hi), s| (lo.min(s.1), hi.max(s.1)));
    let mean_size = tail.iter().map(|s| s.1 as f64).sum::<f64>() / tail.len().max(1) as f64;
    let mean_stored = tail.iter().map(|s| s.2 as f64).sum::<f64>() / tail.len().max(1) as f64;
    println!(
        "sent {} messages in {:.0} s ({:.0}/s); delivered {} to reading devices",
        sent.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        delivered.load(Ordering::Relaxed)
    );
    println!(
        "steady state (second half of the run): database {} on average, between {} and {} ({:+.1}% spread); {:.0} messages stored on average",
        mib(mean_size as i64),
        mib(min),
        mib(max),
        if min > 0 {
            (max - min) as f64 * 100.0 / min as f64
        } else {
            0.0
        },
        mean_stored
    );
    let per_message = |bytes: i64, rows: i64| if rows > 0 { bytes as f64 / rows as f64 } else { 0.0 };
    println!(
        "bytes per stored message: {:.0} (database / stored messages at the end); group_messages {:.0} B/row, inbox {:.0} B/row",
        per_message(final_sample.database, final_sample.rows[0]),
        per_message(final_sample.bytes[0], final_sample.rows[0]),
        per_message(final_sample.bytes[1], final_sample.rows[1]),
    );
    let tables: Vec<String> = TABLES
        .iter()
        .zip(final_sample.rows.iter().zip(&final_sample.bytes))
        .map(|(t, (rows, bytes))| format!("{t} {rows} rows {}", mib(*bytes)))
        .collect();
    println!("at the end: {}", tables.join(", "));
    Ok(())
}

struct Sample {
    database: i64,
    rows: Vec<i64>,
    bytes: Vec<i64>,
    receipts: i64,
}

async fn measure(db: &tokio_postgres::Client) -> anyhow::Result<Sample> {
    let database: i64 = db
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);
    let (mut rows, mut bytes) = (Vec::new(), Vec::new());
    for table in TABLES {
        let row = db
            .query_one(
                &format!("SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}'::regclass)"),
                &[],
            )
            .await?;
        rows.push(row.get(0));
        bytes.push(row.get(1));
    }
    let receipts: i64 = db
        .query_one("SELECT count(*) FROM inbox WHERE kind = 3", &[])
        .await?
        .get(0);
    Ok(Sample {
        database,
        rows,
        bytes,
        receipts,
    })
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

/// A device that reads: over its WebSocket, acknowledging every 50 entries (and every
/// second), reconnecting after its last cursor if the socket closes.
async fn read_forever(client: Client, stop: Arc<AtomicBool>, delivered: Arc<AtomicU64>) {
    let mut cursor = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = client.inbox_stream(cursor).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut acked = cursor;
        loop {
            match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                Ok(Some(Ok(entry))) => {
                    cursor = cursor.max(entry.cursor);
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if cursor - acked >= 50 {
                        if stream.ack(cursor).await.is_err() {
                            break;
                        }
                        acked = cursor;
                    }
                }
                Ok(_) => break,
                Err(_) => {
                    if cursor > acked {
                        if stream.ack(cursor).await.is_err() {
                            break;
                        }
                        acked = cursor;
                    }
                }
            }
        }
    }
}
