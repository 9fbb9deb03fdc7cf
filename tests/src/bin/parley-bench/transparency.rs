//! The key directory (key transparency) at scale: a directory of --users users stored in a
//! private durable PostgreSQL through the homeserver's own storage (`DirectoryStore`, the
//! akd storage of `store::transparency`), then epochs changing 1 / 1,000 / 10,000 users.
//! Prints the time to publish each epoch (with this process's and PostgreSQL's CPU), the
//! sizes of lookup, key-history and append-only proofs, the time a client takes to check
//! a lookup and a key-history proof, and the directory's storage per user.
//!
//! The homeserver's publisher adds to an epoch reading the pending users and their devices
//! (two indexed queries per epoch) and signing the root; the benchmark measures the
//! directory itself, which is where the time goes.

use std::time::{Duration, Instant};

use akd::ecvrf::VRFKeyStorage;
use akd::storage::StorageManager;
use akd::{AkdLabel, AkdValue, AzksParallelismConfig, Directory, HistoryParams};
use parley_homeserver::config::DatabaseConfig;
use parley_homeserver::embedded_pg::{Durability, PgCluster};
use parley_homeserver::store::transparency::DirectoryStore;
use parley_specs::keys_api::DeviceKey;
use parley_specs::transparency_api::DirectoryRoot;
use parley_specs::{DeviceId, ServerName, UserId};
use parley_transparency::DirectoryConfig;

use crate::cpu;

#[derive(clap::Args, Clone)]
pub struct TransparencyArgs {
    /// Users in the directory before the measured epochs.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Users published per epoch while filling the directory.
    #[arg(long, default_value_t = 10_000)]
    fill_batch: usize,
    /// Lookup proofs checked to time the client's check.
    #[arg(long, default_value_t = 1_000)]
    verifications: usize,
}

#[derive(Clone)]
struct BenchVrf([u8; 32]);

#[async_trait::async_trait]
impl VRFKeyStorage for BenchVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, akd::ecvrf::VrfError> {
        Ok(self.0.to_vec())
    }
}

type BenchDirectory = Directory<DirectoryConfig, DirectoryStore, BenchVrf>;

fn user(i: usize) -> UserId {
    UserId::parse(&format!("user{i}@bench.example")).expect("a user id")
}

/// A value of one or two devices with random keys (`round` makes it differ per epoch).
fn value(i: usize, round: usize) -> AkdValue {
    let devices: Vec<DeviceKey> = (0..1 + (i + round) % 2)
        .map(|d| DeviceKey {
            device_id: DeviceId::parse(&format!("D{round}X{d}")).expect("a device id"),
            signature_key: rand::random::<[u8; 32]>().to_vec().into(),
        })
        .collect();
    parley_transparency::encode_value(&devices)
}

async fn directory(pool: &deadpool_postgres::Pool, vrf: &BenchVrf) -> anyhow::Result<BenchDirectory> {
    // As the homeserver does: a fresh cache per operation.
    let storage = StorageManager::new(
        DirectoryStore::new(pool.clone()),
        Some(Duration::from_secs(600)),
        None,
        None,
    );
    Directory::new(storage, vrf.clone(), AzksParallelismConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// Publishes `updates` as one epoch in a new directory handle; (wall time, this
/// process's CPU, PostgreSQL's CPU).
async fn publish(
    pool: &deadpool_postgres::Pool,
    vrf: &BenchVrf,
    pg: &std::path::Path,
    updates: Vec<(AkdLabel, AkdValue)>,
) -> anyhow::Result<(Duration, Duration, Duration)> {
    let (own0, pg0) = (cpu::of_process(std::process::id()), cpu::of_postgres(pg));
    let started = Instant::now();
    let directory = directory(pool, vrf).await?;
    directory.publish(updates).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let wall = started.elapsed();
    Ok((
        wall,
        cpu::of_process(std::process::id()).saturating_sub(own0),
        cpu::of_postgres(pg).saturating_sub(pg0),
    ))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub async fn run(args: TransparencyArgs) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("parley-bench").tempdir_in("/tmp")?;
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let pg_root = dir.path().join("postgres");
    let cluster = {
        let pg_root = pg_root.clone();
        tokio::task::spawn_blocking(move || PgCluster::start(&pg_root, Durability::Durable)).await??
    };
    cluster.create_database("parley").await?;
    let pool = parley_homeserver::db::create_pool(&DatabaseConfig {
        url: cluster.url("parley"),
        pool_size: 8,
        pool_timeout_ms: 30_000,
    })?;
    parley_homeserver::db::migrate(&pool).await?;
    let pg_data = pg_root.join("data");
    let vrf = BenchVrf(rand::random());
    println!(
        "key directory in PostgreSQL (durable, one database), {} users filled {} per epoch",
        args.users, args.fill_batch
    );

    let fill_started = Instant::now();
    let mut filled = 0;
    while filled < args.users {
        let end = (filled + args.fill_batch).min(args.users);
        let updates = (filled..end)
            .map(|i| (parley_transparency::label(&user(i)), value(i, 0)))
            .collect();
        publish(&pool, &vrf, &pg_data, updates).await?;
        filled = end;
    }
    println!(
        "filled: {} users in {:.1} s ({} epochs)",
        args.users,
        fill_started.elapsed().as_secs_f64(),
        args.users.div_ceil(args.fill_batch)
    );

    println!("\nepoch with N changed users (two epochs each):");
    println!(
        "  {:>7}  {:>11}  {:>11}  {:>13}  {:>17}",
        "N", "wall", "wall", "own CPU/user", "PostgreSQL CPU/user"
    );
    let mut round = 1;
    let mut audit_epoch = None;
    for changed in [1usize, 1_000, 10_000] {
        let mut walls = Vec::new();
        let (mut own, mut pg) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..2 {
            let step = (args.users / changed.max(1)).max(1);
            let updates = (0..changed)
                .map(|k| (k * step + round) % args.users)
                .map(|i| (parley_transparency::label(&user(i)), value(i, round)))
                .collect::<std::collections::HashMap<_, _>>()
                .into_iter()
                .collect();
            let (wall, o, p) = publish(&pool, &vrf, &pg_data, updates).await?;
            walls.push(wall);
            own += o;
            pg += p;
            round += 1;
        }
        if changed == 1_000 {
            audit_epoch = Some(
                directory(&pool, &vrf)
                    .await?
                    .get_epoch_hash()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
                    .epoch(),
            );
        }
        let per_user = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6 / (2 * changed) as f64);
        println!(
            "  {changed:>7}  {:>11}  {:>11}  {:>13}  {:>17}",
            ms(walls[0]),
            ms(walls[1]),
            per_user(own),
            per_user(pg)
        );
    }

    // Proofs, as a server makes them and a client checks them.
    let directory = directory(&pool, &vrf).await?;
    let latest = directory.get_epoch_hash().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let root = DirectoryRoot {
        server: ServerName::parse("bench.example")?,
        epoch: latest.epoch(),
        root_hash: latest.hash().to_vec().into(),
        vrf_public_key: vrf
            .get_vrf_public_key()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .as_bytes()
            .to_vec()
            .into(),
        published_at_ms: 0,
    };
    // user0 changed in several epochs: a few versions.
    let someone = user(1);
    let started = Instant::now();
    let (lookup, _) = directory
        .lookup(parley_transparency::label(&someone))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let lookup_time = started.elapsed();
    let lookup = parley_transparency::encode_lookup_proof(&lookup);
    let (history, _) = directory
        .key_history(&parley_transparency::label(&someone), HistoryParams::MostRecent(2))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let history = parley_transparency::encode_history_proof(&history);
    let audit_size = match audit_epoch {
        Some(epoch) if epoch > 1 => {
            let proof = directory
                .audit(epoch - 1, epoch)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            Some(parley_transparency::encode_audit_proof(&proof).len())
        }
        _ => None,
    };
    println!("\nproofs (a user of {} users, epoch {}):", args.users, latest.epoch());
    println!("  lookup proof: {} bytes (made in {})", lookup.len(), ms(lookup_time));
    println!("  key-history proof, 2 versions: {} bytes", history.len());
    if let Some(size) = audit_size {
        println!("  append-only proof of the epoch of 1,000 changes: {size} bytes");
    }

    let started = Instant::now();
    for _ in 0..args.verifications {
        parley_transparency::verify_lookup(&root, &someone, &lookup)?;
    }
    let per_lookup = started.elapsed() / u32::try_from(args.verifications.max(1))?;
    let checks = (args.verifications / 10).max(1);
    let started = Instant::now();
    for _ in 0..checks {
        parley_transparency::verify_history(&root, &someone, &history, 2)?;
    }
    let per_history = started.elapsed() / u32::try_from(checks)?;
    println!(
        "client checks (this build, one core): lookup proof {:.0} µs, key-history proof (2 versions) {:.0} µs",
        per_lookup.as_secs_f64() * 1e6,
        per_history.as_secs_f64() * 1e6
    );

    let db = pool.get().await?;
    let bytes: i64 = db
        .query_one(
            "SELECT pg_total_relation_size('transparency_records') + pg_total_relation_size('transparency_values')",
            &[],
        )
        .await?
        .get(0);
    let nodes: i64 = db
        .query_one("SELECT count(*) FROM transparency_records", &[])
        .await?
        .get(0);
    let states: i64 = db
        .query_one("SELECT count(*) FROM transparency_values", &[])
        .await?
        .get(0);
    println!(
        "storage: {:.1} MiB for {} users: {:.0} bytes per user ({nodes} tree nodes, {states} published values)",
        bytes as f64 / (1024.0 * 1024.0),
        args.users,
        bytes as f64 / args.users as f64
    );
    drop(db);
    drop(pool);
    drop(cluster);
    Ok(())
}
