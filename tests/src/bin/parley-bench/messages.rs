//! Messages through the hub: 1:1 and 20-member groups of real MLS clients, receivers on
//! WebSockets, senders with many requests in flight. One phase per group size, each with
//! its rate, latencies and CPU per message (homeserver, PostgreSQL and this generator,
//! from their own counters), then plain PostgreSQL inserts of the same rows on the same
//! cluster for comparison.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use parley_sdk::Trust;
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{BenchGroup, Deliveries, send_all, setup_group};
use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct MessagesArgs {
    /// Groups of two devices.
    #[arg(long, default_value_t = 200)]
    one_to_one: usize,
    /// Groups of 20 devices.
    #[arg(long, default_value_t = 20)]
    groups_of_20: usize,
    /// Messages each group's sender sends.
    #[arg(long, default_value_t = 50)]
    messages: usize,
    /// Send requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Target send rate in messages/s (default: as fast as accepted).
    #[arg(long)]
    rate: Option<f64>,
    /// Database connections of the homeserver (and of the baseline).
    #[arg(long, default_value_t = 32)]
    pool: usize,
}

pub async fn run(args: MessagesArgs) -> anyhow::Result<()> {
    eprintln!("starting a durable PostgreSQL and a release homeserver ...");
    let server = BenchServer::start(args.pool).await?;
    let trust = Trust::CaPem(server.ca_pem.clone());
    let target = server.target();
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();
    let sizes: Vec<usize> = std::iter::repeat_n(2, args.one_to_one)
        .chain(std::iter::repeat_n(20, args.groups_of_20))
        .collect();
    eprintln!(
        "setting up {} groups ({} devices; MLS commits and Welcomes are real) ...",
        sizes.len(),
        sizes.iter().sum::<usize>()
    );
    let setup_started = Instant::now();
    let groups: Vec<BenchGroup> = futures_util::stream::iter(sizes.iter().enumerate())
        .map(|(g, &size)| setup_group(&target, &target, &trust, format!("b{prefix}g{g}"), size, args.messages))
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!("set up in {:.1} s", setup_started.elapsed().as_secs_f64());

    let deliveries = Deliveries::listen(&groups).await?;
    let connected_rss = server.rss_bytes();
    println!(
        "groups: {} of 2, {} of 20; {} messages from each sender, {} in flight{}",
        args.one_to_one,
        args.groups_of_20,
        args.messages,
        args.concurrency,
        args.rate.map_or(String::new(), |r| format!(", paced at {r:.0}/s"))
    );
    // One phase per group size, so each has its own rate and CPU per message.
    let mut delivered_before = 0;
    for (label, size) in [("1:1", 2), ("groups of 20", 20)] {
        let phase: Vec<&BenchGroup> = groups.iter().filter(|g| g.receivers.len() + 1 == size).collect();
        if phase.is_empty() {
            continue;
        }
        // Interleave the groups' messages so every group is busy at once.
        let mut queue = VecDeque::new();
        for round in 0..args.messages {
            for group in &phase {
                queue.push_back((group.id.clone(), group.sender.clone(), group.prepared[round].clone()));
            }
        }
        let total = queue.len();
        let expected: u64 = phase
            .iter()
            .map(|g| (g.receivers.len() * g.prepared.len()) as u64)
            .sum();
        let cpu_before = server.cpu();
        let started = Instant::now();
        let (accepted_rate, accept) = send_all(queue, args.concurrency, args.rate, None).await?;
        let delivered = deliveries
            .wait_for(delivered_before + expected, Duration::from_secs(120))
            .await
            - delivered_before;
        let deliver_elapsed = started.elapsed();
        let cpu = server.cpu().since(cpu_before);
        delivered_before += delivered;
        let deliver = deliveries.take_latencies();
        let fanouts: Vec<usize> = phase
            .iter()
            .flat_map(|g| std::iter::repeat_n(g.receivers.len(), g.prepared.len()))
            .collect();
        let baseline = crate::baseline::plain_inserts(&server.database_url, &fanouts, args.pool).await?;
        println!("{label}: {total} messages");
        println!(
            "  accepted:   {accepted_rate:.0} messages/s; send->accept {}",
            accept.summary()
        );
        println!(
            "  delivered:  {delivered}/{expected} over WebSockets, {:.0} deliveries/s; accept->deliver {}",
            delivered as f64 / deliver_elapsed.as_secs_f64(),
            deliver.summary()
        );
        println!("  {}", cpu.per_message(total));
        println!(
            "  PostgreSQL baseline (same rows, one transaction per message, {} connections): {baseline:.0} messages/s; parley/baseline = {:.2}",
            args.pool,
            accepted_rate / baseline
        );
    }
    let mib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0));
    println!(
        "homeserver RSS: {} with {} devices connected, {} at the end",
        mib(connected_rss),
        groups.iter().map(|g| g.receivers.len()).sum::<usize>(),
        mib(server.rss_bytes())
    );
    deliveries.finish();
    Ok(())
}
