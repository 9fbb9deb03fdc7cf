//! Many idle devices connected over WebSockets: what each costs the homeserver in memory.
//! The devices are inserted into the database directly (their tokens hashed as the server
//! hashes them): registration cost is measured by `accounts`, not here.

use std::time::Instant;

use futures_util::StreamExt as _;
use parley_sdk::{Client, Trust};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct ConnectionsArgs {
    /// Devices to connect.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
}

pub async fn run(args: ConnectionsArgs) -> anyhow::Result<()> {
    eprintln!("starting a durable PostgreSQL and a release homeserver ...");
    let server = BenchServer::start(8).await?;
    let tokens = insert_devices(&server.database_url, args.devices).await?;
    let idle_rss = server.rss_bytes();
    let trust = Trust::CaPem(server.ca_pem.clone());
    let base: url::Url = server.url.parse()?;
    let started = Instant::now();
    let streams: Vec<_> = futures_util::stream::iter(tokens)
        .map(|token| {
            let (base, trust) = (base.clone(), trust.clone());
            async move { Client::new(base, trust)?.with_access_token(token).inbox_stream(0).await }
        })
        .buffer_unordered(args.parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let connect_time = started.elapsed();
    // Give the server a moment to settle its buffers before reading its memory.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let connected_rss = server.rss_bytes();
    let mib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0));
    println!(
        "{} devices connected over WebSockets in {:.1} s; homeserver RSS {} idle, {} connected ({:.1} KiB per device)",
        streams.len(),
        connect_time.as_secs_f64(),
        mib(idle_rss),
        mib(connected_rss),
        match (idle_rss, connected_rss) {
            (Some(idle), Some(busy)) => busy.saturating_sub(idle) as f64 / 1024.0 / streams.len().max(1) as f64,
            _ => f64::NAN,
        }
    );
    drop(streams);
    Ok(())
}

async fn insert_devices(database_url: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .execute(
            "INSERT INTO accounts (localpart, password_hash) VALUES ('idle', 'x') ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    let tokens: Vec<String> = (0..count)
        .map(|_| format!("pat_{}", Alphanumeric.sample_string(&mut rand::rng(), 43)))
        .collect();
    let ids: Vec<String> = (0..count).map(|i| format!("IDLE{i:08}")).collect();
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| Sha256::digest(t.as_bytes()).to_vec()).collect();
    client
        .execute(
            "INSERT INTO devices (device_id, localpart, display_name, token_hash)
             SELECT id, 'idle', 'idle bench device', hash FROM unnest($1::text[], $2::bytea[]) AS t(id, hash)",
            &[&ids, &hashes],
        )
        .await?;
    Ok(tokens)
}
