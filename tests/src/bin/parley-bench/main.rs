//! `parley-bench`: load generator for a running homeserver. Prints numbers; asserts nothing.
//!
//! `parley-bench accounts --server https://localhost:8443 --ca-file .parley-dev/tls/ca.pem`
//! measures register and login latency (each request does one Argon2id hash).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod baseline;
mod commits;
mod connections;
mod cpu;
mod federated;
mod files;
mod groups;
mod key_backup;
mod load;
mod messages;
mod scale;
mod server;
mod soak;
mod stats;
mod transparency;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use parley_sdk::{Client, Trust};
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use rand::distr::{Alphanumeric, SampleString};

#[derive(Parser)]
#[command(
    name = "parley-bench",
    about = "Load generator for a Parley homeserver; prints latency and throughput"
)]
struct Cli {
    /// Base URL of the homeserver's client API.
    #[arg(long, default_value = "https://localhost:8443")]
    server: url::Url,
    /// CA certificate to trust (the dev server's is .parley-dev/tls/ca.pem); system roots otherwise.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register N accounts, then log each in once; print p50/p99 latency of both.
    Accounts {
        /// How many accounts to register.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Start a private durable PostgreSQL and a release homeserver, run 1:1 and 20-member
    /// groups of real MLS clients through it, and compare with plain PostgreSQL inserts.
    /// Ignores --server and --ca-file.
    Messages(messages::MessagesArgs),
    /// Start a private homeserver and connect many idle devices over WebSockets; print its RSS.
    Connections(connections::ConnectionsArgs),
    /// Start two federating homeservers (each with its own PostgreSQL), measure send->deliver
    /// for receivers on the other server at a steady rate, then the catch-up of a server
    /// that was down. Ignores --server and --ca-file.
    Federated(federated::FederatedArgs),
    /// Start two federating homeservers and time commits through the hub: self-updates,
    /// and adds and removals of users of the hub's server and of the other one (the
    /// device key directory's checks). Ignores --server and --ca-file.
    Commits(commits::CommitsArgs),
    /// Start two federating homeservers and build a group of each --sizes member devices
    /// (about half on each server, hubbed on a.bench); print the hub's add and remove
    /// commit times, a new member's join time, the time for one message to reach every
    /// member device over WebSockets, and the hub's memory per group. Ignores --server and
    /// --ca-file.
    Groups(groups::GroupsArgs),
    /// Start one homeserver domain as 1, 2, 3… release processes over one durable
    /// PostgreSQL and print a table of messages/s and latency per process count.
    /// Ignores --server and --ca-file.
    Scale(scale::ScaleArgs),
    /// Start a release homeserver with short retention settings and send millions of
    /// messages (1:1 and groups, some devices never reading); print the database size
    /// every --report-every messages, bytes per stored message and the steady-state size.
    /// Ignores --server and --ca-file.
    Soak(soak::SoakArgs),
    /// Start two federating homeservers; send a file (100 MiB) from a user of one to a
    /// user of the other, encrypted; print upload and download MB/s next to a plain `cp`
    /// of the same file, and the homeservers' peak RSS. Ignores --server and --ca-file.
    Files(files::FilesArgs),
    /// Start a release homeserver; fill a device's history with --messages messages, back
    /// it up (the key backup), back up one more message, restore it on a new device; print
    /// times and bytes per message on the server. Ignores --server and --ca-file.
    KeyBackup(key_backup::KeyBackupArgs),
    /// Fill a key directory (key transparency) of --users users in a private durable
    /// PostgreSQL through the homeserver's storage; print the time to publish epochs of
    /// 1 / 1,000 / 10,000 changed users, proof sizes, a client's time to check a lookup and
    /// a key-history proof, and storage per user. Ignores --server and --ca-file.
    Transparency(transparency::TransparencyArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let trust = cli.ca_file.map_or(Trust::SystemRoots, Trust::CaFile);
    let client = Arc::new(Client::new(cli.server.clone(), trust)?);
    match cli.command {
        Command::Accounts { count, concurrency } => accounts(client, count, concurrency.max(1)).await,
        Command::Messages(args) => messages::run(args).await,
        Command::Connections(args) => connections::run(args).await,
        Command::Federated(args) => federated::run(args).await,
        Command::Scale(args) => scale::run(args).await,
        Command::Commits(args) => commits::run(args).await,
        Command::Groups(args) => groups::run(args).await,
        Command::Soak(args) => soak::run(args).await,
        Command::Files(args) => files::run(args).await,
        Command::KeyBackup(args) => key_backup::run(args).await,
        Command::Transparency(args) => transparency::run(args).await,
    }
}

async fn accounts(client: Arc<Client>, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 6).to_ascii_lowercase();
    let names: Vec<String> = (0..count).map(|i| format!("bench{prefix}{i}")).collect();
    println!(
        "{count} accounts, {concurrency} requests in flight, against {}",
        client.base_url()
    );

    let register = run(&client, &names, concurrency, |client, name| async move {
        let req = RegisterRequest {
            username: name,
            password: PASSWORD.into(),
            device_name: None,
            invite_token: None,
            signature_key: None,
        };
        client.register(&req).await.map(drop)
    })
    .await?;
    report("register", &register);

    let login = run(&client, &names, concurrency, |client, name| async move {
        let req = LoginRequest {
            username: name,
            password: PASSWORD.into(),
            device_name: None,
            signature_key: None,
            second_factor: None,
        };
        client.login(&req).await.map(drop)
    })
    .await?;
    report("login", &login);
    Ok(())
}

const PASSWORD: &str = "benchmark password";

struct Sample {
    latencies: Vec<Duration>,
    wall: Duration,
}

async fn run<F, Fut>(client: &Arc<Client>, names: &[String], concurrency: usize, op: F) -> anyhow::Result<Sample>
where
    F: Fn(Arc<Client>, String) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), parley_sdk::Error>> + Send,
{
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(names.to_vec()));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (queue, client, op) = (queue.clone(), client.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(name) = queue.lock().unwrap().pop() else { break };
                let t = Instant::now();
                op(client.clone(), name).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, parley_sdk::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort();
    Ok(Sample {
        latencies,
        wall: started.elapsed(),
    })
}

fn report(what: &str, sample: &Sample) {
    let latencies = stats::Latencies::new(sample.latencies.clone());
    println!(
        "{what:>9}: n={} {} throughput={:.1}/s",
        latencies.len(),
        latencies.summary(),
        latencies.len() as f64 / sample.wall.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_argument_and_subcommand_has_help_text() {
        let missing = parley_tests::clap_help::undocumented(&super::Cli::command());
        assert!(missing.is_empty(), "without a --help description: {missing:#?}");
    }
}
