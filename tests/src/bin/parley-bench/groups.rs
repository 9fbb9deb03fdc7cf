//! Large groups across two federating release homeservers: `a.bench` hubs one group of
//! `--sizes` member devices, about half of them on `a.bench` and half on `b.bench`. For
//! each size, on a fresh pair of servers, it measures:
//!
//! - the hub's time to accept an add commit (one device of either server) and a remove
//!   commit; each commit is made before its submit, and only the submit is timed;
//! - a new member's join, from its Welcome waiting in its inbox to its first decrypted
//!   application message: reading the Welcome, fetching the hub's ratchet tree (the group's
//!   Welcomes carry no tree, which the protocol allows, so that they stay small), joining
//!   with openmls and reading and decrypting the message the creator sent right after
//!   the add;
//! - the time from the creator's submit of one application message until the last of all
//!   member devices has it on its inbox WebSocket;
//! - the hub process's resident memory before the group is created and after it is built.
//!
//! Only the creator and the timed joiners run MLS. Every other member is a real device
//! with a real KeyPackage that the creator claims through the API and adds in real
//! commits, and it reads ciphertext over a real WebSocket; it never decrypts, which would
//! only cost this load generator's CPU, not the servers'. Those devices are inserted
//! into their server's database (one account each, ids and token hashes made by the
//! server's own code), because registering thousands of accounts costs an Argon2id hash
//! each; each then uploads its KeyPackage through the client API, so the server binds its
//! signature key into the device key directory itself (`b.bench` then serves it in its
//! signed device lists, which the hub checks every added leaf against).
//!
//! The commits of a freshly built group are the worst case for size: only the creator
//! ever commits, so every parent node off its direct path is blank and a remove's update
//! path is encrypted to about every other member. The timed commits and joins run before
//! the members' WebSockets are opened (a big commit pushed to thousands of sockets would
//! measure this generator); the passive members then read on from the end of their inbox,
//! as devices that processed it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    GroupId as MlsGroupId, KeyPackage, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup, MlsMessageBodyIn, MlsMessageIn,
    OpenMlsProvider as _, RatchetTreeIn, StagedWelcome,
};
use parley_homeserver::config::LimitsConfig;
use parley_homeserver::credentials::{new_access_token, new_device_id};
use parley_homeserver::devcerts::DevCa;
use parley_sdk::{Client, Trust};
use parley_specs::groups_api::{
    CreateGroupRequest, InboxEntry, InboxEntryKind, InboxQuery, SubmitCommitRequest, SubmitMessageRequest,
};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::mls::parse_credential_identity;
use parley_specs::{Base64Bytes, DeviceId, GroupId, UserId};
use parley_tests::mls::{CIPHERSUITE, Processed, TestMlsDevice, join_config, key_package_from, serialize};
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{register, txn};
use crate::server::BenchServer;
use crate::stats::Latencies;

#[derive(clap::Args, Clone)]
pub struct GroupsArgs {
    /// Group sizes to measure, in member devices (comma-separated; a fresh pair of servers each).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    sizes: Vec<usize>,
    /// Add commits, and as many remove commits, to time at each size.
    #[arg(long, default_value_t = 20)]
    commits: usize,
    /// New members whose join is timed at each size (alternately of a.bench and b.bench).
    #[arg(long, default_value_t = 3)]
    joiners: usize,
    /// Application messages whose delivery to every member device is timed at each size.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Members added per commit while the group is built (untimed).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Database connections of each homeserver.
    #[arg(long, default_value_t = 16)]
    pool: usize,
}

/// The limits this benchmark raises, so that the sizes it is asked for fit; what a
/// group needs beyond the defaults is printed as a finding.
const BENCH_MAX_MESSAGE_BYTES: usize = 16 << 20;
const BENCH_MAX_BODY_BYTES: usize = 32 << 20;
const BENCH_MAX_GROUP_SIZE: usize = 100_000;

/// Requests in flight while the generator sets a group up.
const SETUP_CONCURRENCY: usize = 32;
/// How long a join or a delivery may take before the benchmark gives up on it.
const PATIENCE: Duration = Duration::from_secs(120);

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let defaults = LimitsConfig::default();
    println!(
        "groups hubbed on a.bench, members on a.bench and b.bench (release builds, durable PostgreSQL each); \
         limits raised for this benchmark: max_message_bytes {} (default {}), max_body_bytes {} (default {}), \
         max_group_size {} (default {})",
        kib(BENCH_MAX_MESSAGE_BYTES),
        kib(defaults.max_message_bytes),
        kib(BENCH_MAX_BODY_BYTES),
        kib(defaults.max_body_bytes),
        BENCH_MAX_GROUP_SIZE,
        defaults.max_group_size
    );
    for &size in &args.sizes {
        measure(&args, size).await?;
    }
    Ok(())
}

fn raise_limits(config: &mut serde_json::Value) {
    let limits = &mut config["limits"];
    limits["max_message_bytes"] = BENCH_MAX_MESSAGE_BYTES.into();
    limits["max_body_bytes"] = BENCH_MAX_BODY_BYTES.into();
    limits["max_group_size"] = BENCH_MAX_GROUP_SIZE.into();
}

/// A member device that runs no MLS: it only holds a KeyPackage and reads its inbox.
#[derive(Clone)]
struct Device {
    user: UserId,
    id: DeviceId,
    client: Client,
    /// Whether it lives on b.bench.
    remote: bool,
}

async fn measure(args: &GroupsArgs, size: usize) -> anyhow::Result<()> {
    eprintln!("[{size}] starting two federating homeservers, each with a durable PostgreSQL ...");
    let ca = DevCa::generate("Parley bench groups CA")?;
    let (a, b) = BenchServer::start_federating_pair_configured(args.pool, &ca, raise_limits).await?;
    let trust = Trust::CaPem(a.ca_pem.clone());
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();
    let setup_started = Instant::now();

    // The passive members and, after them, the devices the timed commits add and remove.
    let (members_on_b, extras_on_b) = (size / 2, args.commits / 2);
    let (members_on_a, extras_on_a) = (size - members_on_b, args.commits - extras_on_b);
    eprintln!(
        "[{size}] inserting {} devices and uploading their KeyPackages ...",
        size + args.commits
    );
    let mut on_a = insert_devices(&a, &trust, &format!("g{prefix}a"), members_on_a + extras_on_a, false).await?;
    let mut on_b = insert_devices(&b, &trust, &format!("g{prefix}b"), members_on_b + extras_on_b, true).await?;
    let extras = interleave(on_a.split_off(members_on_a), on_b.split_off(members_on_b));
    let members = interleave(on_a, on_b);
    let mut joiners = Vec::new();
    for i in 0..args.joiners {
        let server = if i % 2 == 0 { &a } else { &b };
        let (client, user, mls) = register(&server.target(), &trust, &format!("g{prefix}j{i}")).await?;
        joiners.push(Joiner { client, user, mls });
    }
    let (client, _, mls) = register(&a.target(), &trust, &format!("g{prefix}creator")).await?;
    let devices_ready = setup_started.elapsed();

    println!("group of {size} member devices ({members_on_a} on a.bench, {members_on_b} on b.bench) plus its creator:");
    let hub_before = a.rss_bytes();
    let id = GroupId::parse(&format!("g{prefix}@{}", a.server_name))?;
    let mut creator = Creator::create(client, mls, id).await?;
    let build_started = Instant::now();
    let mut largest_setup = Submitted::default();
    let batches = members.chunks(args.batch.max(1));
    let commits_in_build = batches.len();
    for (i, batch) in batches.enumerate() {
        eprintln!(
            "[{size}] adding members {}.. ({} of them) ...",
            i * args.batch,
            batch.len()
        );
        let users: Vec<UserId> = batch.iter().map(|d| d.user.clone()).collect();
        largest_setup = largest_setup.max(creator.add(&users).await?);
    }
    let build_time = build_started.elapsed();
    // Let the hub finish what follows the last commit (federation sends) before reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub_after = a.rss_bytes();
    println!(
        "  setup: {} devices ready in {:.1} s ({} inserted + KeyPackages uploaded, {} registered); \
         group built in {commits_in_build} commits of up to {} adds in {:.1} s",
        size + args.commits + args.joiners + 1,
        devices_ready.as_secs_f64(),
        size + args.commits,
        args.joiners + 1,
        args.batch,
        build_time.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (hub_before, hub_after) {
        let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
        println!(
            "  hub RSS: {:.1} MiB before the group, {:.1} MiB once built: {:+.1} MiB for this group",
            mib(before),
            mib(after),
            mib(after) - mib(before)
        );
    }

    eprintln!(
        "[{size}] timing {} add and {} remove commits ...",
        args.commits, args.commits
    );
    let (largest_add, largest_remove) = time_commits(&mut creator, &extras).await?;
    eprintln!("[{size}] timing {} joins ...", joiners.len());
    time_joins(&mut creator, &joiners).await?;
    let tree = creator.client.group_info(&creator.id).await?.ratchet_tree.0.len();
    println!(
        "  sizes: ratchet tree {}; largest setup commit {} with a Welcome of {} (request body {}); \
         add commit {}, remove commit {} (request body {})",
        kib(tree),
        kib(largest_setup.commit),
        kib(largest_setup.welcome),
        kib(largest_setup.body),
        kib(largest_add.commit),
        kib(largest_remove.commit),
        kib(largest_remove.body)
    );
    let group_size = creator.group.members().count();
    print_over_default_limits(group_size, tree, largest_setup, largest_add, largest_remove);

    eprintln!("[{size}] opening every member's inbox WebSocket ...");
    let mut listeners: Vec<(Client, DeviceId)> = members.iter().map(|d| (d.client.clone(), d.id.clone())).collect();
    for joiner in &joiners {
        let device = parse_credential_identity(joiner.mls.credential.credential.serialized_content())
            .map(|(_, device)| device)
            .context("a joiner's credential")?;
        listeners.push((joiner.client.clone(), device));
    }
    let arrivals = Arrivals::listen(&a, &b, listeners).await?;
    time_delivery(&mut creator, &arrivals, args.messages).await?;
    arrivals.stop();
    Ok(())
}

/// Adds each of `devices` and removes it again; prints the hub's accept times. Returns
/// the largest add and remove commits.
async fn time_commits(creator: &mut Creator, devices: &[Device]) -> anyhow::Result<(Submitted, Submitted)> {
    let (mut add_local, mut add_remote, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    let (mut largest_add, mut largest_remove) = (Submitted::default(), Submitted::default());
    for device in devices {
        let added = creator.add(std::slice::from_ref(&device.user)).await?;
        let adds = if device.remote { &mut add_remote } else { &mut add_local };
        adds.push(added.took);
        let removed = creator.remove(&device.user).await?;
        remove.push(removed.took);
        largest_add = largest_add.max(added);
        largest_remove = largest_remove.max(removed);
    }
    println!("  commit accepted by the hub (submit only):");
    for (kind, samples) in [
        ("add, a device of a.bench", add_local),
        ("add, a device of b.bench (its list fetched)", add_remote),
        ("remove", remove),
    ] {
        println!(
            "    {kind:<45} n={:<3} {}",
            samples.len(),
            Latencies::new(samples).summary()
        );
    }
    Ok((largest_add, largest_remove))
}

/// Adds each joiner, sends it a message at once, and prints how long its join took.
async fn time_joins(creator: &mut Creator, joiners: &[Joiner]) -> anyhow::Result<()> {
    let mut joins = Vec::new();
    for joiner in joiners {
        creator.add(std::slice::from_ref(&joiner.user)).await?;
        creator.send(b"for the new member").await?;
        joins.push(joiner.join(&creator.id).await?);
    }
    let total = Latencies::new(joins.iter().map(|j| j.total).collect());
    let tree = Latencies::new(joins.iter().map(|j| j.tree).collect());
    let mls = Latencies::new(joins.iter().map(|j| j.mls).collect());
    println!(
        "  join, Welcome in the inbox -> first application message decrypted: n={} p50={} max={} \
         (of which fetching the tree p50={}, openmls join p50={})",
        total.len(),
        ms(total.quantile(0.5)),
        ms(total.quantile(1.0)),
        ms(tree.quantile(0.5)),
        ms(mls.quantile(0.5))
    );
    Ok(())
}

/// Sends `messages` application messages one at a time, each once the previous reached
/// every device; prints the time from each submit to its last device.
async fn time_delivery(creator: &mut Creator, arrivals: &Arrivals, messages: usize) -> anyhow::Result<()> {
    let mut to_last = Vec::new();
    for i in 0..messages {
        let (sent_at, seq) = creator.send(format!("to everyone {i}").as_bytes()).await?;
        match arrivals.wait_for_all(seq, PATIENCE).await {
            Ok(last) => to_last.push(last.saturating_duration_since(sent_at)),
            Err(reached) => println!(
                "  message {i}: only {reached}/{} devices had it after {PATIENCE:?}",
                arrivals.devices
            ),
        }
    }
    let to_last = Latencies::new(to_last);
    println!(
        "  one message to all {} other member devices over WebSockets, submit -> last device: \
         n={} p50={} max={}",
        arrivals.devices,
        to_last.len(),
        ms(to_last.quantile(0.5)),
        ms(to_last.quantile(1.0))
    );
    Ok(())
}

/// What of this group the servers' default limits would refuse (this benchmark raises them).
fn print_over_default_limits(group_size: usize, tree: usize, setup: Submitted, add: Submitted, remove: Submitted) {
    let defaults = LimitsConfig::default();
    let mut over = Vec::new();
    if group_size > defaults.max_group_size {
        over.push(format!(
            "{group_size} leaves > max_group_size {}",
            defaults.max_group_size
        ));
    }
    for (what, bytes) in [
        ("a setup commit", setup.commit),
        ("a setup Welcome", setup.welcome),
        ("an add commit", add.commit),
        ("a remove commit", remove.commit),
        (
            "a Welcome with the ratchet tree (as the SDK sends them), at least",
            tree,
        ),
    ] {
        if bytes > defaults.max_message_bytes {
            over.push(format!(
                "{what} {} > max_message_bytes {}",
                kib(bytes),
                kib(defaults.max_message_bytes)
            ));
        }
    }
    for (what, bytes) in [("setup", setup.body), ("remove", remove.body)] {
        if bytes > defaults.max_body_bytes {
            over.push(format!(
                "a {what} request {} > max_body_bytes {}",
                kib(bytes),
                kib(defaults.max_body_bytes)
            ));
        }
    }
    if !over.is_empty() {
        println!("  refused with the default limits: {}", over.join("; "));
    }
}

/// What one submitted commit weighed and how long the hub took to accept it.
#[derive(Default, Clone, Copy)]
struct Submitted {
    took: Duration,
    commit: usize,
    welcome: usize,
    /// The JSON request body (base64), what `max_body_bytes` limits.
    body: usize,
}

impl Submitted {
    /// The larger of two, by request body.
    fn max(self, other: Self) -> Self {
        if other.body > self.body { other } else { self }
    }
}

/// The group's creator: the one member that commits and sends.
struct Creator {
    client: Client,
    mls: TestMlsDevice,
    group: MlsGroup,
    id: GroupId,
}

impl Creator {
    /// Creates the group on the hub. Unlike `TestMlsDevice::create_group`, its Welcomes
    /// carry no ratchet tree (joiners fetch the hub's): with the tree, a Welcome grows
    /// with the group.
    async fn create(client: Client, mls: TestMlsDevice, id: GroupId) -> anyhow::Result<Self> {
        let group = MlsGroup::builder()
            .with_group_id(MlsGroupId::from_slice(id.as_str().as_bytes()))
            .ciphersuite(CIPHERSUITE)
            .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(false)
            .build(&mls.provider, &mls.signer, mls.credential.clone())?;
        let info = group.export_group_info(mls.provider.crypto(), &mls.signer, false)?;
        let tree = openmls::prelude::tls_codec::Serialize::tls_serialize_detached(&group.export_ratchet_tree())?;
        let request = CreateGroupRequest {
            group_info: serialize(&info).into(),
            ratchet_tree: tree.into(),
        };
        client.create_group(&request).await?;
        Ok(Self { client, mls, group, id })
    }

    /// One KeyPackage of each user's (single) device, claimed a few at a time.
    async fn claim(&self, users: &[UserId]) -> anyhow::Result<Vec<KeyPackage>> {
        let claimed: Vec<_> = futures_util::stream::iter(users)
            .map(|user| async move {
                let request = ClaimKeyPackagesRequest { user_id: user.clone() };
                self.client.claim_key_packages(&request).await
            })
            .buffered(SETUP_CONCURRENCY)
            .collect()
            .await;
        let mut packages = Vec::with_capacity(users.len());
        for answer in claimed {
            let answer = answer?;
            if answer.key_packages.is_empty() {
                bail!("{} has no KeyPackage left", answer.user_id);
            }
            packages.extend(
                answer
                    .key_packages
                    .iter()
                    .map(|k| key_package_from(k.key_package.as_slice())),
            );
        }
        Ok(packages)
    }

    /// Adds the users' devices in one commit without an update path, as the SDK commits
    /// adds.
    async fn add(&mut self, users: &[UserId]) -> anyhow::Result<Submitted> {
        let packages = self.claim(users).await?;
        let (commit, welcome, _) =
            self.group
                .add_members_without_update(&self.mls.provider, &self.mls.signer, &packages)?;
        self.submit(serialize(&commit), Some(serialize(&welcome))).await
    }

    /// Removes `user`'s device (MLS requires an update path with a remove).
    async fn remove(&mut self, user: &UserId) -> anyhow::Result<Submitted> {
        let leaf = self
            .group
            .members()
            .find(|m| parse_credential_identity(m.credential.serialized_content()).is_some_and(|(u, _)| u == *user))
            .map(|m| m.index)
            .context("the device to remove is not in the group")?;
        let (commit, _, _) = self
            .group
            .remove_members(&self.mls.provider, &self.mls.signer, &[leaf])?;
        self.submit(serialize(&commit), None).await
    }

    /// Submits the pending commit; only the request is timed.
    async fn submit(&mut self, commit: Vec<u8>, welcome: Option<Vec<u8>>) -> anyhow::Result<Submitted> {
        let (commit_len, welcome_len) = (commit.len(), welcome.as_ref().map_or(0, Vec::len));
        let request = SubmitCommitRequest {
            txn_id: txn(),
            commit: commit.into(),
            welcome: welcome.map(Into::into),
            group_info: self.mls.pending_group_info(&self.group).into(),
        };
        let body = serde_json::to_vec(&request)?.len();
        let started = Instant::now();
        self.client.submit_commit(&self.id, &request).await?;
        let took = started.elapsed();
        self.group.merge_pending_commit(&self.mls.provider)?;
        Ok(Submitted {
            took,
            commit: commit_len,
            welcome: welcome_len,
            body,
        })
    }

    /// Encrypts and sends an application message; when the submit started, and its seq.
    async fn send(&mut self, text: &[u8]) -> anyhow::Result<(Instant, i64)> {
        let request = SubmitMessageRequest {
            txn_id: txn(),
            message: Base64Bytes(self.mls.encrypt(&mut self.group, text)),
            expires_at: None,
        };
        let started = Instant::now();
        let accepted = self.client.submit_message(&self.id, &request).await?;
        Ok((started, accepted.seq))
    }
}

/// A new member whose join is timed: a registered device running openmls.
struct Joiner {
    client: Client,
    user: UserId,
    mls: TestMlsDevice,
}

struct JoinTiming {
    total: Duration,
    tree: Duration,
    mls: Duration,
}

impl Joiner {
    /// Waits (untimed) until its Welcome is in its inbox, then times reading it, fetching
    /// the hub's tree, joining, and reading and decrypting the first application message.
    async fn join(&self, group_id: &GroupId) -> anyhow::Result<JoinTiming> {
        self.next_entry(0, InboxEntryKind::Welcome).await?;
        let started = Instant::now();
        let welcome = self.next_entry(0, InboxEntryKind::Welcome).await?;
        let fetch_started = Instant::now();
        let tree = self.client.group_info(group_id).await?.ratchet_tree;
        let tree_took = fetch_started.elapsed();
        let join_started = Instant::now();
        let welcome_bytes = welcome.payload.as_ref().context("a Welcome without payload")?;
        let mut group = self.join_with_tree(welcome_bytes.as_slice(), tree.as_slice())?;
        let mls_took = join_started.elapsed();
        let mut after = welcome.cursor;
        loop {
            let entry = self.next_entry(after, InboxEntryKind::Message).await?;
            after = entry.cursor;
            let payload = entry.payload.as_ref().context("a message without payload")?;
            if entry.group_id == *group_id && self.mls.process(&mut group, payload.as_slice()) != Processed::Commit {
                break;
            }
        }
        Ok(JoinTiming {
            total: started.elapsed(),
            tree: tree_took,
            mls: mls_took,
        })
    }

    /// As `TestMlsDevice::join`, with the tree the hub serves (the Welcome has none).
    fn join_with_tree(&self, welcome: &[u8], tree: &[u8]) -> anyhow::Result<MlsGroup> {
        let MlsMessageBodyIn::Welcome(welcome) = MlsMessageIn::tls_deserialize_exact(welcome)?.extract() else {
            bail!("a Welcome entry holds no Welcome");
        };
        let tree = RatchetTreeIn::tls_deserialize_exact(tree)?;
        let staged = StagedWelcome::new_from_welcome(&self.mls.provider, &join_config(), welcome, Some(tree))?;
        Ok(staged.into_group(&self.mls.provider)?)
    }

    /// The first entry of `kind` after `after`, waiting for it.
    async fn next_entry(&self, after: i64, kind: InboxEntryKind) -> anyhow::Result<InboxEntry> {
        let deadline = Instant::now() + PATIENCE;
        let mut after = after;
        while Instant::now() < deadline {
            let query = InboxQuery {
                after: Some(after),
                limit: None,
                timeout_ms: Some(10_000),
            };
            let page = self.client.read_inbox(&query).await?;
            if let Some(entry) = page.entries.into_iter().find(|e| e.kind == kind) {
                return Ok(entry);
            }
            after = page.next_cursor;
        }
        bail!("{} got no {kind:?} entry within {PATIENCE:?}", self.user)
    }
}

/// Inserts `count` accounts of one device each into `server`'s database, as registration
/// would but without the password hash (nobody logs in with them), then has each device
/// upload one KeyPackage through the client API, which binds its signature key.
async fn insert_devices(
    server: &BenchServer,
    trust: &Trust,
    prefix: &str,
    count: usize,
    remote: bool,
) -> anyhow::Result<Vec<Device>> {
    let localparts: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let ids: Vec<String> = (0..count).map(|_| new_device_id()).collect();
    let tokens: Vec<_> = (0..count).map(|_| new_access_token()).collect();
    let hashes: Vec<Vec<u8>> = tokens.iter().map(|t| t.hash.to_vec()).collect();
    let db = server.db().await?;
    db.execute(
        "INSERT INTO accounts (localpart, password_hash) SELECT unnest($1::text[]), 'no password: parley-bench'",
        &[&localparts],
    )
    .await?;
    db.execute(
        "INSERT INTO devices (device_id, localpart, display_name, token_hash)
         SELECT id, localpart, 'parley-bench member', hash
         FROM unnest($1::text[], $2::text[], $3::bytea[]) AS t(id, localpart, hash)",
        &[&ids, &localparts, &hashes],
    )
    .await?;
    let base = Client::new(server.url.parse()?, trust.clone())?;
    let devices = localparts.iter().zip(&ids).zip(tokens).map(|((localpart, id), token)| {
        let client = base.clone().with_access_token(token.secret);
        async move {
            let user = UserId::parse(&format!("{localpart}@{}", server.server_name))?;
            let id = DeviceId::parse(id)?;
            let package = TestMlsDevice::new(&user, &id).key_package(false);
            let upload = UploadKeyPackagesRequest {
                key_packages: vec![Base64Bytes(package)],
            };
            client.upload_key_packages(&upload).await?;
            anyhow::Ok(Device {
                user,
                id,
                client,
                remote,
            })
        }
    });
    futures_util::stream::iter(devices)
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// a0, b0, a1, b1, …: both servers' devices in every batch.
fn interleave(a: Vec<Device>, b: Vec<Device>) -> Vec<Device> {
    let mut b = b.into_iter();
    let mut all = Vec::with_capacity(a.len() + b.len());
    for device in a {
        all.push(device);
        all.extend(b.next());
    }
    all.extend(b);
    all
}

/// The member devices' inbox WebSockets: when each application message (by seq) reached
/// how many devices, and when the last of them.
struct Arrivals {
    devices: usize,
    by_seq: Arc<Mutex<HashMap<i64, (usize, Instant)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Arrivals {
    /// Opens a WebSocket per device (of a.bench or b.bench), reading on from the end of
    /// its inbox: what is there already is not what is timed.
    async fn listen(a: &BenchServer, b: &BenchServer, devices: Vec<(Client, DeviceId)>) -> anyhow::Result<Self> {
        let (mut positions, b_positions) = (inbox_ends(a, &devices).await?, inbox_ends(b, &devices).await?);
        positions.extend(b_positions);
        let by_seq = Arc::new(Mutex::new(HashMap::new()));
        let count = devices.len();
        let streams = futures_util::stream::iter(devices)
            .map(|(client, id)| {
                let after = positions.get(id.as_str()).copied().unwrap_or(0);
                async move { client.inbox_stream(after).await }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut tasks = Vec::with_capacity(count);
        for stream in streams {
            let mut stream = stream.context("open a member's inbox WebSocket")?;
            let by_seq = by_seq.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(Ok(entry)) = stream.next().await {
                    if entry.kind != InboxEntryKind::Message {
                        continue;
                    }
                    let now = Instant::now();
                    let mut by_seq = by_seq.lock().unwrap_or_else(|p| p.into_inner());
                    let reached = by_seq.entry(entry.seq).or_insert((0, now));
                    *reached = (reached.0 + 1, reached.1.max(now));
                }
            }));
        }
        Ok(Self {
            devices: count,
            by_seq,
            tasks,
        })
    }

    /// When the last device got message `seq`; how many had it when `timeout` passed.
    async fn wait_for_all(&self, seq: i64, timeout: Duration) -> Result<Instant, usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let (reached, last) = self
                .by_seq
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&seq)
                .copied()
                .unwrap_or((0, Instant::now()));
            if reached >= self.devices {
                return Ok(last);
            }
            if Instant::now() > deadline {
                return Err(reached);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The last inbox position of each of `devices` that `server` holds, from its database.
async fn inbox_ends(server: &BenchServer, devices: &[(Client, DeviceId)]) -> anyhow::Result<HashMap<String, i64>> {
    let ids: Vec<&str> = devices.iter().map(|(_, id)| id.as_str()).collect();
    let rows = server
        .db()
        .await?
        .query(
            "SELECT device_id, inbox_position FROM devices WHERE device_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
