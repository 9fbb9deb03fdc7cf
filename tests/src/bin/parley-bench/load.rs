//! What the message benchmarks share: accounts with a KeyPackage, and senders that keep
//! a number of submits in flight, optionally paced.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use openmls::prelude::MlsGroup;
use parley_sdk::{Client, Trust};
use parley_specs::client_api::RegisterRequest;
use parley_specs::groups_api::{InboxEntryKind, SubmitCommitRequest, SubmitMessageRequest};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::{Base64Bytes, GroupId, UserId};
use parley_tests::mls::{TestMlsDevice, key_package_from, serialize};
use rand::distr::{Alphanumeric, SampleString};
use time::OffsetDateTime;

use crate::stats::Latencies;

/// Where benchmark clients connect: one process of a homeserver.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub server_name: String,
}

pub struct BenchGroup {
    pub id: GroupId,
    pub sender: Client,
    pub receivers: Vec<Client>,
    pub prepared: Vec<Vec<u8>>,
}

/// Called with (group, seq, send start) for each accepted message.
pub type OnAccepted = Arc<dyn Fn(&GroupId, i64, Instant) + Send + Sync>;

pub type Queue = VecDeque<(GroupId, Client, Vec<u8>)>;

/// Sends everything with `concurrency` requests in flight, optionally paced at `rate`
/// messages/s; returns the accepted rate and the send→accept latencies.
pub async fn send_all(
    queue: Queue,
    concurrency: usize,
    rate: Option<f64>,
    on_accepted: Option<OnAccepted>,
) -> anyhow::Result<(f64, Latencies)> {
    let total = queue.len();
    let queue = Arc::new(Mutex::new(queue));
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let interval = rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r.max(1.0)));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (queue, accepted, on_accepted) = (queue.clone(), accepted.clone(), on_accepted.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some((group, client, message)) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                    break;
                };
                let t = Instant::now();
                let req = SubmitMessageRequest {
                    txn_id: txn(),
                    message: Base64Bytes(message),
                    expires_at: None,
                };
                let answer = client.submit_message(&group, &req).await?;
                let took = t.elapsed();
                accepted.lock().unwrap_or_else(|p| p.into_inner()).push(took);
                if let Some(on_accepted) = &on_accepted {
                    on_accepted(&group, answer.seq, t);
                }
                if let Some(interval) = interval {
                    tokio::time::sleep(interval.saturating_sub(took)).await;
                }
            }
            Ok::<_, parley_sdk::Error>(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let latencies = Latencies::new(std::mem::take(&mut *accepted.lock().unwrap_or_else(|p| p.into_inner())));
    Ok((rate, latencies))
}

pub fn txn() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

pub async fn register(server: &Target, trust: &Trust, name: &str) -> anyhow::Result<(Client, UserId, TestMlsDevice)> {
    let client = Client::new(server.url.parse()?, trust.clone())?;
    let req = RegisterRequest {
        username: name.to_owned(),
        password: "benchmark password".into(),
        device_name: None,
        invite_token: None,
        signature_key: None,
    };
    let session = client.register(&req).await?;
    let client = client.with_access_token(session.access_token);
    let mls = TestMlsDevice::new(&session.user_id, &session.device_id);
    let packages = vec![Base64Bytes(mls.key_package(false))];
    client
        .upload_key_packages(&UploadKeyPackagesRequest { key_packages: packages })
        .await?;
    Ok((client, session.user_id, mls))
}

/// A group hubbed on `hub` whose sender registers there and its `size - 1` receivers on
/// `receivers_on` (the same server, or another one it federates with), all joined through
/// a real commit and Welcome, with `messages` ciphertexts prepared before the timed phase.
pub async fn setup_group(
    hub: &Target,
    receivers_on: &Target,
    trust: &Trust,
    name: String,
    size: usize,
    messages: usize,
) -> anyhow::Result<BenchGroup> {
    let (sender, _, mls) = register(hub, trust, &format!("{name}s")).await?;
    let id = GroupId::parse(&format!("{name}@{}", hub.server_name))?;
    let (mut group, request) = mls.create_group(&id);
    sender.create_group(&request).await?;
    let mut receivers = Vec::new();
    let mut packages = Vec::new();
    for i in 1..size {
        let (client, user, _) = register(receivers_on, trust, &format!("{name}r{i}")).await?;
        let claimed = sender
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user })
            .await?;
        packages.extend(
            claimed
                .key_packages
                .iter()
                .map(|k| key_package_from(k.key_package.as_slice())),
        );
        receivers.push(client);
    }
    let (commit, welcome, _) = group.add_members(&mls.provider, &mls.signer, &packages)?;
    let req = SubmitCommitRequest {
        txn_id: txn(),
        commit: serialize(&commit).into(),
        welcome: Some(serialize(&welcome).into()),
        group_info: mls.pending_group_info(&group).into(),
    };
    sender.submit_commit(&id, &req).await?;
    group.merge_pending_commit(&mls.provider)?;
    let prepared = prepare(&mls, &mut group, messages);
    Ok(BenchGroup {
        id,
        sender,
        receivers,
        prepared,
    })
}

/// Real ciphertext, made before the timed phase.
fn prepare(mls: &TestMlsDevice, group: &mut MlsGroup, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| mls.encrypt(group, format!("benchmark message {i:06} ........").as_bytes()))
        .collect()
}

/// The receivers' WebSockets, counting application messages and their accept→deliver
/// latency (from the hub's `sent_at`; same machine, same clock).
pub struct Deliveries {
    count: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Deliveries {
    pub async fn listen(groups: &[BenchGroup]) -> anyhow::Result<Self> {
        let count = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for client in groups.iter().flat_map(|g| g.receivers.iter()) {
            let mut stream = client.inbox_stream(0).await.context("open a receiver's WebSocket")?;
            let (count, latencies) = (count.clone(), latencies.clone());
            tasks.push(tokio::spawn(async move {
                let mut unacked = 0;
                while let Some(Ok(entry)) = stream.next().await {
                    if entry.kind != InboxEntryKind::Message {
                        continue;
                    }
                    let waited = (OffsetDateTime::now_utc() - entry.sent_at).unsigned_abs();
                    latencies.lock().unwrap_or_else(|p| p.into_inner()).push(waited);
                    count.fetch_add(1, Ordering::Relaxed);
                    unacked += 1;
                    if unacked >= 50 {
                        let _ = stream.ack(entry.cursor).await;
                        unacked = 0;
                    }
                }
            }));
        }
        Ok(Self {
            count,
            latencies,
            tasks,
        })
    }

    /// Waits until `expected` messages arrived or `timeout` passed; returns how many did.
    pub async fn wait_for(&self, expected: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.count.load(Ordering::Relaxed)
    }

    /// The accept→deliver latencies so far, forgetting them (the next phase starts afresh).
    pub fn take_latencies(&self) -> Latencies {
        Latencies::new(std::mem::take(
            &mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    /// Closes the WebSockets; the accept→deliver latencies.
    pub fn finish(self) -> Latencies {
        for task in self.tasks {
            task.abort();
        }
        Latencies::new(std::mem::take(
            &mut *self.latencies.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}
