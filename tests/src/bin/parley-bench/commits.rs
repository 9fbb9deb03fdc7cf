//! Commits through the hub: how long `POST /groups/{g}/commits` takes to be accepted for
//! the kinds of commit a group sees, in a group of a few members on two federating
//! release homeservers (`a.bench` hubs; `b.bench` holds the remote users). Adds and
//! changed leaves are where the hub checks the device key directory: a user of the hub's
//! own server is checked in its store; a user of the other server against that server's
//! signed device list, fetched (without the group's lock) the first time and cached
//! after: each remote user is added twice, once with the list fetched and once from the
//! cache.
//!
//! Every commit is made before its request is timed; only the submit is. Run it against
//! another `parley-homeserver` binary (`BENCH_PARLEY_HOMESERVER=/path/to/binary`) to
//! compare versions on the same machine in one session.

use std::time::{Duration, Instant};

use openmls::prelude::{KeyPackage, LeafNodeParameters, MlsGroup};
use parley_homeserver::devcerts::DevCa;
use parley_sdk::{Client, Trust};
use parley_specs::UserId;
use parley_specs::groups_api::SubmitCommitRequest;
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::mls::parse_credential_identity;
use parley_specs::{Base64Bytes, GroupId};
use parley_tests::mls::{TestMlsDevice, key_package_from, serialize};
use rand::distr::{Alphanumeric, SampleString};

use crate::load::{Target, register, txn};
use crate::server::BenchServer;
use crate::stats::Latencies;

#[derive(clap::Args, Clone)]
pub struct CommitsArgs {
    /// Commits of each kind to time.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Members the group has (besides its creator) before the timed phase.
    #[arg(long, default_value_t = 8)]
    members: usize,
    /// Database connections of each homeserver.
    #[arg(long, default_value_t = 8)]
    pool: usize,
}

struct Hub {
    client: Client,
    mls: TestMlsDevice,
    group: MlsGroup,
    id: GroupId,
}

impl Hub {
    /// Submits a commit already pending in the group, returns how long it took.
    async fn submit(&mut self, commit: Vec<u8>, welcome: Option<Vec<u8>>) -> anyhow::Result<Duration> {
        let req = SubmitCommitRequest {
            txn_id: txn(),
            commit: commit.into(),
            welcome: welcome.map(Into::into),
            group_info: self.mls.pending_group_info(&self.group).into(),
        };
        let started = Instant::now();
        self.client.submit_commit(&self.id, &req).await?;
        let took = started.elapsed();
        self.group.merge_pending_commit(&self.mls.provider)?;
        Ok(took)
    }

    async fn claim(&self, user: &UserId) -> anyhow::Result<Vec<KeyPackage>> {
        let claimed = self
            .client
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await?;
        Ok(claimed
            .key_packages
            .iter()
            .map(|k| key_package_from(k.key_package.as_slice()))
            .collect())
    }

    /// Times adding `user`'s device, then removing it again.
    async fn add_and_remove(&mut self, user: &UserId) -> anyhow::Result<(Duration, Duration)> {
        let packages = self.claim(user).await?;
        let (commit, welcome) = self.mls.add(&mut self.group, &packages);
        let add = self.submit(commit, Some(welcome)).await?;
        let leaf = self
            .group
            .members()
            .find(|m| parse_credential_identity(m.credential.serialized_content()).is_some_and(|(u, _)| u == *user))
            .map(|m| m.index)
            .ok_or_else(|| anyhow::anyhow!("the added device is not in the group"))?;
        let (commit, _, _) = self
            .group
            .remove_members(&self.mls.provider, &self.mls.signer, &[leaf])?;
        let remove = self.submit(serialize(&commit), None).await?;
        Ok((add, remove))
    }
}

pub async fn run(args: CommitsArgs) -> anyhow::Result<()> {
    eprintln!("starting two federating homeservers, each with a durable PostgreSQL ...");
    let ca = DevCa::generate("Parley bench commits CA")?;
    let (a, b) = BenchServer::start_federating_pair(args.pool, &ca).await?;
    let trust = Trust::CaPem(a.ca_pem.clone());
    let (on_a, on_b) = (a.target(), b.target());
    let prefix = Alphanumeric.sample_string(&mut rand::rng(), 5).to_ascii_lowercase();

    eprintln!(
        "registering {} users on each server (one KeyPackage each) ...",
        args.count + args.members
    );
    let (client, _, mls) = register(&on_a, &trust, &format!("c{prefix}hub")).await?;
    let id = GroupId::parse(&format!("c{prefix}@{}", on_a.server_name))?;
    let (group, request) = mls.create_group(&id);
    client.create_group(&request).await?;
    let mut hub = Hub { client, mls, group, id };
    // `packages` KeyPackages each: a user is added (and removed) once per package.
    let users = |target: &Target, tag: &'static str, n: usize, packages: usize| {
        let (target, trust, prefix) = (target.clone(), trust.clone(), prefix.clone());
        async move {
            let mut users = Vec::new();
            for i in 0..n {
                let (client, user, mls) = register(&target, &trust, &format!("c{prefix}{tag}{i}")).await?;
                let more = (1..packages).map(|_| Base64Bytes(mls.key_package(false))).collect();
                client
                    .upload_key_packages(&UploadKeyPackagesRequest { key_packages: more })
                    .await?;
                users.push(user);
            }
            anyhow::Ok(users)
        }
    };
    let members = users(&on_a, "m", args.members, 1).await?;
    let local = users(&on_a, "l", args.count, 1).await?;
    let remote = users(&on_b, "r", args.count, 2).await?;
    for user in &members {
        let packages = hub.claim(user).await?;
        let (commit, welcome) = hub.mls.add(&mut hub.group, &packages);
        hub.submit(commit, Some(welcome)).await?;
    }

    let mut timings: Vec<(&str, Vec<Duration>)> = vec![
        ("update (no leaf changes identity or key)", Vec::new()),
        ("add, a user of the hub's server", Vec::new()),
        ("remove, a user of the hub's server", Vec::new()),
        ("add, a user of the other server (list fetched)", Vec::new()),
        ("remove, a user of the other server", Vec::new()),
        ("add, the same user again (list cached)", Vec::new()),
    ];
    for i in 0..args.count {
        let bundle = hub
            .group
            .self_update(&hub.mls.provider, &hub.mls.signer, LeafNodeParameters::default())?;
        let update = serialize(bundle.commit());
        timings[0].1.push(hub.submit(update, None).await?);
        let (add, remove) = hub.add_and_remove(&local[i]).await?;
        timings[1].1.push(add);
        timings[2].1.push(remove);
        let (add, remove) = hub.add_and_remove(&remote[i]).await?;
        timings[3].1.push(add);
        timings[4].1.push(remove);
        let (again, _) = hub.add_and_remove(&remote[i]).await?;
        timings[5].1.push(again);
    }
    println!(
        "commit accept latency, {} of each kind, group of {} members (hub a.bench, release build):",
        args.count,
        args.members + 1
    );
    for (kind, samples) in timings {
        println!("  {kind:<50} {}", Latencies::new(samples).summary());
    }
    Ok(())
}
