//! Groups across three homeservers (a.test hubs, b.test and c.test follow), each with
//! its own database and certificate from the test CA, talking mutual TLS on loopback.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use parley_homeserver::config::Config;
use parley_sdk::messenger::{Event, HistoryMessage, Messenger};
use parley_specs::{GroupId, ServerName, UserId};
use parley_tests::TestServer;
use parley_tests::server::{free_loopback_addr, wait_until};

use crate::messenger::device;

const NAMES: [&str; 3] = ["a.test", "b.test", "c.test"];
/// Generous: a test machine running the suite in parallel is slow.
const DELIVERY: Duration = Duration::from_secs(60);

pub(crate) struct Trio {
    pub dirs: Vec<tempfile::TempDir>,
    pub servers: Vec<Option<TestServer>>,
}

/// Three servers that reach each other, each on its own federation address.
pub(crate) async fn trio() -> Trio {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_loopback_addr()).collect();
    let mut servers = Vec::new();
    for i in 0..3 {
        let peers = (0..3)
            .filter(|&j| j != i)
            .map(|j| (ServerName::parse(NAMES[j]).unwrap(), addrs[j]))
            .collect();
        servers.push(Some(
            TestServer::spawn_federating_with(NAMES[i], dirs[i].path(), addrs[i], peers, |_| {}).await,
        ));
    }
    Trio { dirs, servers }
}

impl Trio {
    pub fn server(&self, i: usize) -> &TestServer {
        self.servers[i].as_ref().expect("running")
    }

    pub async fn stop(&mut self, i: usize) -> Config {
        self.servers[i].take().expect("running").stop().await
    }

    pub async fn start(&mut self, i: usize, config: Config) {
        self.servers[i] = Some(TestServer::start(config).await);
    }
}

/// (seq, sender, text) of a history.
fn lines(history: &[HistoryMessage]) -> Vec<(i64, String, String)> {
    history
        .iter()
        .map(|m| (m.seq, m.sender.to_string(), m.text.clone()))
        .collect()
}

/// Syncs until `done` holds for the device's history of `group` (deliveries across
/// servers are asynchronous).
async fn sync_until(m: &mut Messenger, group: &GroupId, what: &str, done: impl Fn(&[HistoryMessage]) -> bool) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    let mut events = Vec::new();
    loop {
        events.extend(m.receive(Duration::from_millis(500)).await.expect("receive"));
        let history = m.history(group, None).await.unwrap_or_default();
        if done(&history) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never had {what}; history {:?}; events {events:?}",
            m.user_id(),
            lines(&history)
        );
    }
}

/// Syncs until the device has joined `group`.
async fn joined(m: &mut Messenger, group: &GroupId) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        if m.groups().await.expect("groups").iter().any(|g| g.group_id == *group) {
            return;
        }
        m.receive(Duration::from_millis(500)).await.expect("receive");
        assert!(tokio::time::Instant::now() < deadline, "{} never joined {group}", m.user_id());
    }
}

fn user(m: &Messenger) -> UserId {
    m.user_id().clone()
}

/// Two devices each of ann@a.test, ben@b.test and cat@c.test.
async fn six_devices(trio: &Trio, dir: &Path) -> Vec<Messenger> {
    let mut devices = Vec::new();
    for (i, name) in ["ann", "ben", "cat"].iter().enumerate() {
        devices.push(device(trio.server(i), dir, name, true).await);
        devices.push(device(trio.server(i), dir, name, false).await);
    }
    devices
}

#[tokio::test]
async fn a_group_across_three_servers_is_read_by_every_device_in_hub_order() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let mut devices = six_devices(&trio, dir.path()).await;
    let group = devices[0].create_group().await.expect("create on a.test");
    let others: Vec<UserId> = [0, 2, 4].iter().map(|&i| user(&devices[i])).collect();
    let added = devices[0].add_members(&group, &others).await.expect("add across domains");
    assert_eq!(added.added.len(), 5, "{added:?}");
    for d in devices.iter_mut().skip(1) {
        joined(d, &group).await;
    }

    // Everyone sends; followers' messages go through their own server to the hub.
    let mut sent = Vec::new();
    for round in 0..2 {
        for (i, d) in devices.iter_mut().enumerate() {
            let text = format!("round {round} from device {i}");
            let message = d.send_text(&group, &text, None).await.expect("send");
            sent.push((message.seq, d.user_id().to_string(), text));
        }
    }
    sent.sort();
    for d in devices.iter_mut() {
        let events = sync_until(d, &group, "every message", |h| lines(h) == sent).await;
        assert!(
            !events.iter().any(|e| matches!(e, Event::Undecryptable { .. })),
            "{}: {events:?}",
            d.user_id()
        );
    }

    // A follower removes cat@c.test; c.test stores the removal and nothing after it.
    let cat = user(&devices[4]);
    let removed = devices[2].remove_members(&group, &[cat]).await.expect("ben removes cat");
    assert_eq!(removed.removed.len(), 2);
    let after = devices[0].send_text(&group, "after cat left", None).await.expect("send").seq;
    for d in devices.iter_mut().take(4) {
        sync_until(d, &group, "the message after the removal", |h| h.iter().any(|m| m.seq == after)).await;
    }
    for cat in &mut devices[4..] {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        loop {
            let events = cat.receive(Duration::from_millis(500)).await.expect("receive");
            if events.iter().any(|e| matches!(e, Event::Removed { .. })) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "cat never learnt of the removal");
        }
        let history = cat.history(&group, None).await.expect("history stays readable");
        assert!(history.iter().all(|m| m.seq < after), "nothing after the removal");
    }
    // The hub sent c.test nothing after the commit that removed its last member.
    let c = trio.server(2);
    let stored_at_c = c
        .count("SELECT count(*) FROM group_messages WHERE group_id = $1 AND seq >= $2", &[&group.as_str(), &after])
        .await;
    assert_eq!(stored_at_c, 0);
    let a = trio.server(0);
    assert!(
        wait_until(DELIVERY, || async { a.count("SELECT count(*) FROM federation_queue", &[]).await == 0 }).await,
        "the hub's queue drains"
    );
    let members: BTreeSet<String> = devices[2]
        .members(&group)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.user_id.to_string())
        .collect();
    assert_eq!(members, BTreeSet::from(["ann@a.test".to_owned(), "ben@b.test".to_owned()]));
}
