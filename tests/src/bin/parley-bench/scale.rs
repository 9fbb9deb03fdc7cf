//! One homeserver domain on 1, 2, 3… processes over one durable PostgreSQL: the same
//! 1:1 message load spread over the processes (each group's sender on one process, its
//! receiver on the next, so most deliveries cross processes through LISTEN/NOTIFY).
//! Prints one row per process count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use parley_sdk::Trust;
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{BenchGroup, Deliveries, Target, send_all, setup_group};
use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct ScaleArgs {
    /// Process counts to measure, each on a fresh database.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    processes: Vec<usize>,
    /// 1:1 groups.
    #[arg(long, default_value_t = 200)]
    groups: usize,
    /// Messages each group's sender sends.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Send requests in flight at once (over all processes).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Database connections of each process.
    #[arg(long, default_value_t = 16)]
    pool: usize,
    /// Connect each group's receiver to the process after its sender's (every delivery
    /// crosses processes: a NOTIFY and a database read) instead of the same one (pushed
    /// from the writer's memory).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cross_process: bool,
}

struct Row {
    processes: usize,
    accepted_rate: f64,
    accept_p50: Duration,
    accept_p99: Duration,
    deliver_p50: Duration,
    deliver_p99: Duration,
    delivered: u64,
    expected: u64,
    rss: Option<u64>,
    /// CPU during the timed phase.
    cpu: crate::cpu::Split,
    /// PostgreSQL transactions during the timed phase (single reads count as one), and
    /// WAL flushes (durable commits, several committing together may share one).
    transactions: i64,
    wal_syncs: i64,
}

pub async fn run(args: ScaleArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &processes in &args.processes {
        rows.push(measure(&args, processes.max(1)).await?);
    }
    println!(
        "{} 1:1 groups x {} messages, {} requests in flight, {} connections per process, receivers on {} process; one durable PostgreSQL, all on this machine",
        args.groups,
        args.messages,
        args.concurrency,
        args.pool,
        if args.cross_process { "the next" } else { "the sender's" }
    );
    println!(
        "processes | accepted msg/s | send->accept p50 / p99 | accept->deliver p50 / p99 | delivered | RSS (all processes)"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for row in &rows {
        println!(
            "{:>9} | {:>14.0} | {:>8.1} / {:>6.1} ms | {:>10.1} / {:>6.1} ms | {}/{} | {}",
            row.processes,
            row.accepted_rate,
            ms(row.accept_p50),
            ms(row.accept_p99),
            ms(row.deliver_p50),
            ms(row.deliver_p99),
            row.delivered,
            row.expected,
            row.rss
                .map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0)),
        );
    }
    println!("CPU per accepted message (µs; the machine has {} cores):", cores());
    println!(
        "processes | homeserver | PostgreSQL | together | load generator | per 100 messages: PostgreSQL transactions, WAL flushes"
    );
    for row in &rows {
        let [homeserver, postgres, server, generator] = row.cpu.per_message_us(row.expected as usize);
        println!(
            "{:>9} | {:>10.0} | {:>10.0} | {:>8.0} | {:>14.0} | {:.0}, {:.1}",
            row.processes,
            homeserver,
            postgres,
            server,
            generator,
            100.0 * row.transactions as f64 / row.expected.max(1) as f64,
            100.0 * row.wal_syncs as f64 / row.expected.max(1) as f64
        );
    }
    Ok(())
}

async fn measure(args: &ScaleArgs, processes: usize) -> anyhow::Result<Row> {
    eprintln!("{processes} process(es): starting a durable PostgreSQL and the homeserver ...");
    let mut server = BenchServer::start(args.pool).await?;
    let mut targets = vec![server.target()];
    for _ in 1..processes {
        targets.push(server.start_replica().await?);
    }
    let trust = Trust::CaPem(server.ca_pem.clone());
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();
    let on = |i: usize| -> &Target { &targets[i % processes] };
    let receiver_offset = usize::from(args.cross_process);
    let groups: Vec<BenchGroup> = futures_util::stream::iter(0..args.groups)
        .map(|g| {
            let name = format!("s{prefix}g{g}");
            setup_group(on(g), on(g + receiver_offset), &trust, name, 2, args.messages)
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let expected = (args.groups * args.messages) as u64;
    let deliveries = Deliveries::listen(&groups).await?;
    let mut queue = VecDeque::new();
    for round in 0..args.messages {
        for group in &groups {
            queue.push_back((group.id.clone(), group.sender.clone(), group.prepared[round].clone()));
        }
    }
    eprintln!("{processes} process(es): sending {expected} messages ...");
    let stats = server.db().await?;
    let before = pg_counters(&stats).await?;
    let cpu_before = server.cpu();
    let started = Instant::now();
    let (accepted_rate, accept) = send_all(queue, args.concurrency, None, None).await?;
    let delivered = deliveries.wait_for(expected, Duration::from_secs(120)).await;
    let cpu = server.cpu().since(cpu_before);
    let after = pg_counters(&stats).await?;
    let (transactions, wal_syncs) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "{processes} process(es): delivered {delivered}/{expected} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rss = server.rss_bytes_all();
    let deliver = deliveries.finish();
    Ok(Row {
        processes,
        accepted_rate,
        accept_p50: accept.quantile(0.5),
        accept_p99: accept.quantile(0.99),
        deliver_p50: deliver.quantile(0.5),
        deliver_p99: deliver.quantile(0.99),
        delivered,
        expected,
        rss,
        cpu,
        transactions,
        wal_syncs,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Transactions in the benchmark's database and WAL flushes of its cluster so far.
async fn pg_counters(db: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    let row = db
        .query_one(
            "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                    (SELECT wal_sync FROM pg_stat_wal)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
