//! Messages across two federated homeservers: 1:1 groups hubbed on `a.bench` whose sender
//! is on a.bench and receiver on `b.bench` (each server a release process with its own
//! durable PostgreSQL, mutual TLS between them). Phase 1 sends at a steady rate and
//! measures send→deliver for the receivers on the other server; phase 2 kills b.bench,
//! lets a backlog queue up on a.bench, restarts b.bench and measures how fast it catches up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt as _;
use parley_homeserver::devcerts::DevCa;
use parley_sdk::Trust;
use parley_specs::groups_api::InboxEntryKind;
use parley_tests::server::metric_value;
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{BenchGroup, OnAccepted, send_all, setup_group};
use crate::server::BenchServer;
use crate::stats::Latencies;

#[derive(clap::Args, Clone)]
pub struct FederatedArgs {
    /// 1:1 groups (sender on a.bench, receiver on b.bench).
    #[arg(long, default_value_t = 200)]
    groups: usize,
    /// Messages per group in the steady phase.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Steady-phase send rate, messages/s.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Send requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Messages sent while b.bench is down, for the catch-up phase (0 skips it).
    #[arg(long, default_value_t = 30_000)]
    backlog: usize,
    /// Database connections of each homeserver.
    #[arg(long, default_value_t = 32)]
    pool: usize,
}

/// When each message was sent and when it was delivered, matched by (group, seq).
#[derive(Default)]
struct Timeline {
    sent: HashMap<(String, i64), Instant>,
    delivered: HashMap<(String, i64), Instant>,
    latencies: Vec<Duration>,
}

impl Timeline {
    fn sent(&mut self, key: (String, i64), at: Instant) {
        match self.delivered.remove(&key) {
            Some(delivered) => self.latencies.push(delivered.saturating_duration_since(at)),
            None => {
                self.sent.insert(key, at);
            }
        }
    }

    fn delivered(&mut self, key: (String, i64), at: Instant) {
        match self.sent.remove(&key) {
            Some(sent) => self.latencies.push(at.saturating_duration_since(sent)),
            None => {
                self.delivered.insert(key, at);
            }
        }
    }
}

pub async fn run(args: FederatedArgs) -> anyhow::Result<()> {
    eprintln!("starting two durable PostgreSQL clusters and two federating release homeservers ...");
    let ca = DevCa::generate("Parley bench federation CA")?;
    let (a, mut b) = BenchServer::start_federating_pair(args.pool, &ca).await?;
    let trust = Trust::CaPem(ca.cert_pem().into_bytes());
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();
    let per_group_backlog = args.backlog.div_ceil(args.groups.max(1));
    eprintln!(
        "setting up {} groups across the two servers (real MLS, claims over federation) ...",
        args.groups
    );
    let started = Instant::now();
    let (on_a, on_b) = (a.target(), b.target());
    let pairs: Vec<BenchGroup> = futures_util::stream::iter(0..args.groups)
        .map(|g| {
            let messages = args.messages + per_group_backlog;
            setup_group(&on_a, &on_b, &trust, format!("f{prefix}g{g}"), 2, messages)
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    // Phase 1: steady load across servers.
    let timeline = Arc::new(Mutex::new(Timeline::default()));
    let mut receivers = Vec::new();
    for pair in &pairs {
        let mut stream = pair.receivers[0]
            .inbox_stream(0)
            .await
            .context("open a receiver's WebSocket")?;
        let timeline = timeline.clone();
        receivers.push(tokio::spawn(async move {
            let mut unacked = 0;
            while let Some(Ok(entry)) = stream.next().await {
                if entry.kind != InboxEntryKind::Message {
                    continue;
                }
                let key = (entry.group_id.as_str().to_owned(), entry.seq);
                timeline
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .delivered(key, Instant::now());
                unacked += 1;
                if unacked >= 50 {
                    let _ = stream.ack(entry.cursor).await;
                    unacked = 0;
                }
            }
        }));
    }
    let mut queue = VecDeque::new();
    for round in 0..args.messages {
        for pair in &pairs {
            queue.push_back((pair.id.clone(), pair.sender.clone(), pair.prepared[round].clone()));
        }
    }
    let total = queue.len();
    let record = timeline.clone();
    let on_accepted: OnAccepted = Arc::new(move |group, seq, at| {
        let key = (group.as_str().to_owned(), seq);
        record.lock().unwrap_or_else(|p| p.into_inner()).sent(key, at);
    });
    let (cpu_before, steady_started) = ((a.cpu(), b.cpu()), Instant::now());
    let (accepted_rate, accept) = send_all(queue, args.concurrency, Some(args.rate), Some(on_accepted)).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while timeline.lock().unwrap_or_else(|p| p.into_inner()).latencies.len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a_cpu, b_cpu) = (a.cpu().since(cpu_before.0), b.cpu().since(cpu_before.1));
    let steady = steady_started.elapsed().as_secs_f64();
    for receiver in receivers {
        receiver.abort();
    }
    let deliver = Latencies::new(std::mem::take(
        &mut timeline.lock().unwrap_or_else(|p| p.into_inner()).latencies,
    ));
    println!(
        "{} 1:1 groups hubbed on a.bench, receivers on b.bench; {total} messages paced at {:.0}/s, {} in flight",
        args.groups, args.rate, args.concurrency
    );
    println!(
        "accepted:  {accepted_rate:.0} messages/s; send->accept {}",
        accept.summary()
    );
    println!(
        "delivered: {}/{total} on b.bench over WebSockets; send->deliver {}",
        deliver.len(),
        deliver.summary()
    );

    let a_metrics = metrics_text(&a).await?;
    let (sends, mean) = transactions_sent(&a_metrics);
    println!(
        "transactions a.bench -> b.bench: {sends}, {:.1} messages each, {:.1} ms each on average (sending, b.bench storing, answering); {}",
        total as f64 / sends.max(1.0),
        mean * 1000.0,
        slower_than(&a_metrics, "parley_federation_send_seconds")
    );
    println!(
        "cores busy while sending: a.bench {:.2} + its PostgreSQL {:.2}, b.bench {:.2} + its PostgreSQL {:.2}, this generator {:.2} (of {})",
        a_cpu.homeserver.as_secs_f64() / steady,
        a_cpu.postgres.as_secs_f64() / steady,
        b_cpu.homeserver.as_secs_f64() / steady,
        b_cpu.postgres.as_secs_f64() / steady,
        a_cpu.generator.as_secs_f64() / steady,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // b.bench's push latency runs from the hub's acceptance (its `sent_at`) to the push.
    println!(
        "hub's acceptance -> push on b.bench (b.bench's push latency, all its pushes): {}",
        slower_than(&metrics_text(&b).await?, "parley_push_latency_seconds")
    );

    if args.backlog == 0 {
        return Ok(());
    }
    // Phase 2: b.bench is down while a backlog builds up on a.bench, then comes back.
    b.kill_process();
    let mut queue = VecDeque::new();
    for round in args.messages..args.messages + per_group_backlog {
        for pair in &pairs {
            queue.push_back((pair.id.clone(), pair.sender.clone(), pair.prepared[round].clone()));
        }
    }
    let backlog = queue.len() as i64;
    let down_since = Instant::now();
    let (backlog_rate, _) = send_all(queue, args.concurrency, None, None).await?;
    let a_db = a.db().await?;
    let waiting = queued_for_b(&a_db).await?;
    println!(
        "b.bench down: {backlog} messages accepted by a.bench at {backlog_rate:.0}/s, {waiting} queued for b.bench"
    );
    let b_stored_before = count_messages(&b).await?;
    let sends_before = transactions_sent(&metrics_text(&a).await?).0;
    b.start_process().await?;
    let back_at = Instant::now();
    let cpu_before = (a.cpu(), b.cpu());
    println!(
        "b.bench restarted after {:.0} s down",
        down_since.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if queued_for_b(&a_db).await? == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("a.bench's queue for b.bench did not drain within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = back_at.elapsed();
    let (a_cpu, b_cpu) = (a.cpu().since(cpu_before.0), b.cpu().since(cpu_before.1));
    let stored = count_messages(&b).await? - b_stored_before;
    let sends = transactions_sent(&metrics_text(&a).await?).0 - sends_before;
    println!(
        "catch-up:  {stored} messages stored on b.bench (with their inbox entries) in {:.1} s after its restart: {:.0} messages/s",
        caught_up.as_secs_f64(),
        stored as f64 / caught_up.as_secs_f64()
    );
    let [a_hs, a_pg, ..] = a_cpu.per_message_us(stored as usize);
    let [b_hs, b_pg, ..] = b_cpu.per_message_us(stored as usize);
    println!(
        "catch-up:  {sends:.0} transactions of {:.0} messages on average; CPU per message: a.bench {a_hs:.0} µs + its PostgreSQL {a_pg:.0} µs, b.bench {b_hs:.0} µs + its PostgreSQL {b_pg:.0} µs ({:.2} of this machine's cores busy)",
        stored as f64 / sends.max(1.0),
        (a_cpu.homeserver + a_cpu.postgres + b_cpu.homeserver + b_cpu.postgres).as_secs_f64() / caught_up.as_secs_f64()
    );
    Ok(())
}

/// The Prometheus text of `server`'s `/metrics`.
async fn metrics_text(server: &BenchServer) -> anyhow::Result<String> {
    let http = parley_tests::server::https_client_trusting(&String::from_utf8_lossy(&server.ca_pem), None);
    Ok(http
        .get(format!("{}/metrics", server.url))
        .bearer_auth(&server.metrics_token)
        .send()
        .await?
        .text()
        .await?)
}

/// (count, mean seconds) of the transactions a server sent, from its metrics.
fn transactions_sent(text: &str) -> (f64, f64) {
    let count = metric_value(text, "parley_federation_send_seconds_count");
    (
        count,
        metric_value(text, "parley_federation_send_seconds_sum") / count.max(1.0),
    )
}

/// "of N: over 50 ms n, over 100 ms n, …", from a histogram's buckets.
fn slower_than(text: &str, histogram: &str) -> String {
    let count = metric_value(text, &format!("{histogram}_count"));
    let over: Vec<String> = [("0.05", 50), ("0.1", 100), ("0.25", 250), ("0.5", 500)]
        .iter()
        .map(|(le, ms)| {
            let within = metric_value(text, &format!("{histogram}_bucket{{le=\"{le}\"}}"));
            format!("over {ms} ms {:.0}", count - within)
        })
        .collect();
    format!("of {count:.0}: {}", over.join(", "))
}

async fn queued_for_b(a: &tokio_postgres::Client) -> anyhow::Result<i64> {
    let row = a
        .query_one(
            "SELECT count(*) FROM federation_queue WHERE destination = 'b.bench'",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn count_messages(server: &BenchServer) -> anyhow::Result<i64> {
    let db = server.db().await?;
    Ok(db.query_one("SELECT count(*) FROM group_messages", &[]).await?.get(0))
}
