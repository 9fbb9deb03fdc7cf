//! Two federating homeservers as real processes, killed with SIGKILL mid-traffic: nothing
//! accepted is lost, nothing is delivered twice, and order holds.

use std::path::Path;

use parley_sdk::messenger::Messenger;
use parley_specs::{DeviceId, ServerName, UserId};
use parley_tests::process::ProcessServer;
use parley_tests::server::{federating_config, free_loopback_addr};

use crate::federated_groups::{joined, lines, sync_until};
use crate::helpers::register_request;

const PASSPHRASE: &str = "a passphrase for the store";

/// A user's device on a homeserver process, that can move to another process of the
/// same homeserver (its store in `dir` and its session go with it).
pub(crate) struct Device {
    name: String,
    token: String,
    pub messenger: Messenger,
}

impl Device {
    /// A new user `name` with one device on `server`.
    pub async fn register(server: &ProcessServer, dir: &Path, name: &str) -> Self {
        let session = server.sdk().register(&register_request(name)).await.expect("register");
        let mut device = Self {
            name: name.to_owned(),
            messenger: open(
                server,
                dir,
                name,
                &session.access_token,
                session.user_id,
                session.device_id,
            )
            .await,
            token: session.access_token,
        };
        device.messenger.sync().await.expect("first sync");
        device
    }

    /// Connects to `server` instead, keeping its store and session.
    pub async fn reconnect(&mut self, server: &ProcessServer, dir: &Path) {
        let (user, device) = (self.user(), self.messenger.device_id().clone());
        self.messenger = open(server, dir, &self.name, &self.token, user, device).await;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn user(&self) -> UserId {
        self.messenger.user_id().clone()
    }
}

/// The messenger of a device of `name` (store in `dir`) talking to `server`.
async fn open(
    server: &ProcessServer,
    dir: &Path,
    name: &str,
    token: &str,
    user: UserId,
    device: DeviceId,
) -> Messenger {
    let client = server.sdk().with_access_token(token);
    Messenger::open(client, user, device, dir.join(format!("{name}.sealed")), PASSPHRASE)
        .await
        .expect("open the store")
}

#[tokio::test]
async fn killed_homeservers_lose_and_repeat_nothing_across_federation() {
    let (a_dir, b_dir, stores) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a_fed, b_fed) = (free_loopback_addr(), free_loopback_addr());
    let name = |s: &str| ServerName::parse(s).unwrap();
    let a_config = federating_config("a.test", a_dir.path(), a_fed, vec![(name("b.test"), b_fed)], |_| {}).await;
    let b_config = federating_config("b.test", b_dir.path(), b_fed, vec![(name("a.test"), a_fed)], |_| {}).await;
    let mut a = ProcessServer::start(a_config, a_dir.path()).await;
    let mut b = ProcessServer::start(b_config, b_dir.path()).await;

    let mut ann = Device::register(&a, stores.path(), "ann").await.messenger;
    let mut ben = Device::register(&b, stores.path(), "ben").await.messenger;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[ben.user_id().clone()])
        .await
        .expect("add ben@b.test");
    joined(&mut ben, &group).await;

    // b.test is killed mid-stream; then the hub is killed with messages queued for b.test.
    let mut sent = Vec::new();
    for i in 0..30 {
        if i == 10 {
            b.kill();
        }
        let text = format!("message {i}");
        let seq = ann.send_text(&group, &text, None).await.expect("the hub accepts").seq;
        sent.push((seq, "ann@a.test".to_owned(), text));
    }
    a.kill();
    a.restart().await;
    b.restart().await;
    sync_until(&mut ben, &group, "all 30 messages, once each, in order", |h| {
        let got = lines(h);
        assert!(got.len() <= sent.len(), "a message twice: {got:?}");
        got == sent
    })
    .await;
    let queued = a.count("SELECT count(*) FROM federation_queue", &[]).await;
    assert!(
        parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
            a.count("SELECT count(*) FROM federation_queue", &[]).await == 0
        })
        .await,
        "the hub's queue drains (was {queued})"
    );

    // And back the other way, through the restarted follower to the restarted hub.
    let reply = ben
        .send_text(&group, "got them all", None)
        .await
        .expect("forwarded to the hub")
        .seq;
    sync_until(&mut ann, &group, "ben's reply", |h| h.iter().any(|m| m.seq == reply)).await;
}
