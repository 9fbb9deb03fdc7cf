//! Groups across three homeservers (a.test hubs, b.test and c.test follow), each with
//! its own database and certificate from the test CA, talking mutual TLS on loopback.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use parley_federation::ServerKeyring;
use parley_federation::client::FederationClient;
use parley_federation::discovery::Reach;
use parley_federation::hub_signature;
use parley_federation::server_key::ROTATION_OVERLAP_MS;
use parley_homeserver::config::{Config, FederationConfig};
use parley_homeserver::remote::now_ms;
use parley_homeserver::tls::{certified_key, root_store};
use parley_sdk::messenger::{Event, Messenger};
use parley_specs::endpoints::federation::{BACKFILL, GROUP_DELIVERY, RECEIPTS, SEND_TRANSACTION, SUBMIT_MESSAGE};
use parley_specs::federation_api::{
    DeliveryReceipt, ForwardedMessage, OrderedKind, OrderedMessage, ReceiptsRequest, Transaction, TransactionResult,
};
use parley_specs::groups_api::{GroupDelivery, GroupMember, SubmitMessageRequest};
use parley_specs::{ErrorCode, GroupId, ServerName, UserId};
use parley_tests::TestServer;
use parley_tests::server::{ca_file, free_loopback_addr, wait_until};

use crate::helpers::{DELIVERY, code, device, joined, keyring_in, lines, send_in_turn, sync_until, user};

const NAMES: [&str; 3] = ["a.test", "b.test", "c.test"];

struct Trio {
    pub dirs: Vec<tempfile::TempDir>,
    pub servers: Vec<Option<TestServer>>,
}

/// Three servers that reach each other, each on its own federation address.
async fn trio() -> Trio {
    trio_with(|_, _| {}).await
}

/// Like `trio`, after letting the test adjust server `i`'s federation settings.
async fn trio_with(adjust: impl Fn(usize, &mut FederationConfig)) -> Trio {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_loopback_addr()).collect();
    let mut servers = Vec::new();
    for i in 0..3 {
        let peers = (0..3)
            .filter(|&j| j != i)
            .map(|j| (ServerName::parse(NAMES[j]).unwrap(), addrs[j]))
            .collect();
        servers.push(Some(
            TestServer::spawn_federating_with(NAMES[i], dirs[i].path(), addrs[i], peers, |f| adjust(i, f)).await,
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
    let added = devices[0]
        .add_members(&group, &others)
        .await
        .expect("add across domains");
    assert_eq!(added.added.len(), 5, "{added:?}");
    for d in devices.iter_mut().skip(1) {
        joined(d, &group).await;
    }

    // Everyone sends; followers' messages go through their own server to the hub.
    let sent = send_in_turn(&mut devices, &group, 2).await;
    for d in devices.iter_mut() {
        let events = sync_until(d, &group, "every message", |h| lines(h) == sent).await;
        assert!(
            !events.iter().any(|e| matches!(e, Event::Undecryptable { .. })),
            "{}: {events:?}",
            d.user_id()
        );
    }

    // A follower removes cat@c.test (made an admin first: removing others is for
    // admins); c.test stores the removal and nothing after it.
    let ben = user(&devices[2]);
    devices[0].promote(&group, &ben).await.expect("promote ben");
    let cat = user(&devices[4]);
    let removed = devices[2]
        .remove_members(&group, &[cat])
        .await
        .expect("ben removes cat");
    assert_eq!(removed.removed.len(), 2);
    let after = devices[0]
        .send_text(&group, "after cat left", None)
        .await
        .expect("send")
        .seq;
    for d in devices.iter_mut().take(4) {
        sync_until(d, &group, "the message after the removal", |h| {
            h.iter().any(|m| m.seq == after)
        })
        .await;
    }
    for cat in &mut devices[4..] {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        loop {
            let events = cat.receive(Duration::from_millis(500)).await.expect("receive");
            if events.iter().any(|e| matches!(e, Event::Removed { .. })) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cat never learnt of the removal"
            );
        }
        let history = cat.history(&group, None).await.expect("history stays readable");
        assert!(history.iter().all(|m| m.seq < after), "nothing after the removal");
    }
    // The hub sent c.test nothing after the commit that removed its last member.
    let c = trio.server(2);
    let stored_at_c = c
        .count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1 AND seq >= $2",
            &[&group.as_str(), &after],
        )
        .await;
    assert_eq!(stored_at_c, 0);
    let a = trio.server(0);
    assert!(
        wait_until(DELIVERY, || async {
            a.count("SELECT count(*) FROM federation_queue", &[]).await == 0
        })
        .await,
        "the hub's queue drains"
    );
    let members: BTreeSet<String> = devices[2]
        .members(&group)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.user_id.to_string())
        .collect();
    assert_eq!(
        members,
        BTreeSet::from(["ann@a.test".to_owned(), "ben@b.test".to_owned()])
    );
}

/// Receives until `m`'s copy of `group` is at `epoch`.
async fn sync_until_epoch(m: &mut Messenger, group: &GroupId, epoch: u64) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        m.receive(Duration::from_millis(500)).await.expect("receive");
        let overview = m.groups().await.expect("groups");
        if overview.iter().any(|g| &g.group_id == group && g.epoch >= Some(epoch)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never reached epoch {epoch}",
            m.user_id()
        );
    }
}

/// ann@a.test and ben@b.test in a group hubbed on a.test, both devices joined.
async fn pair_group(trio: &Trio, dir: &Path) -> (Messenger, Messenger, GroupId) {
    let mut ann = device(trio.server(0), dir, "ann", true).await;
    let mut ben = device(trio.server(1), dir, "ben", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add ben");
    joined(&mut ben, &group).await;
    (ann, ben, group)
}

#[tokio::test]
async fn a_followers_commit_racing_a_hub_local_commit_catches_up_and_retries() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, mut ben, group) = pair_group(&trio, dir.path()).await;
    // Adding is for admins (the creator is one): ann makes ben one too.
    ann.promote(&group, &user(&ben)).await.expect("promote ben");
    sync_until_epoch(&mut ben, &group, 2).await;
    let dan = device(trio.server(0), dir.path(), "dan", true).await;
    let eve = device(trio.server(1), dir.path(), "eve", true).await;
    // Both commit for epoch 2 at once: one wins, the other gets 409 wrong_epoch (relayed
    // from the hub for ben), catches up on the winner's commit and commits again.
    let (dan, eve) = ([user(&dan)], [user(&eve)]);
    let (by_ann, by_ben) = tokio::join!(ann.add_members(&group, &dan), ben.add_members(&group, &eve));
    let epochs = BTreeSet::from([by_ann.expect("ann's add").epoch, by_ben.expect("ben's add").epoch]);
    assert_eq!(epochs, BTreeSet::from([3, 4]), "one commit per epoch");
    let everyone: BTreeSet<String> = ["ann@a.test", "ben@b.test", "dan@a.test", "eve@b.test"]
        .map(str::to_owned)
        .into();
    for m in [&mut ann, &mut ben] {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        loop {
            m.receive(Duration::from_millis(500)).await.expect("receive");
            let members: BTreeSet<String> = m
                .members(&group)
                .await
                .expect("members")
                .into_iter()
                .map(|d| d.user_id.to_string())
                .collect();
            if members == everyone {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} sees {members:?}",
                m.user_id()
            );
        }
    }
    let text = ben
        .send_text(&group, "both of them are in", None)
        .await
        .expect("send")
        .seq;
    sync_until(&mut ann, &group, "ben's message", |h| h.iter().any(|m| m.seq == text)).await;
}

/// Sends `count` messages from `from`; returns their (seq, text) in order.
async fn send_many(from: &mut Messenger, group: &GroupId, count: usize, tag: &str) -> Vec<(i64, String)> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let text = format!("{tag} {i}");
        let seq = from.send_text(group, &text, None).await.expect("send").seq;
        sent.push((seq, text));
    }
    sent
}

/// Syncs until the device has exactly `expected` (seq, text) among messages of `tag`.
async fn has_exactly(m: &mut Messenger, group: &GroupId, tag: &str, expected: &[(i64, String)]) {
    sync_until(m, group, &format!("all {} {tag} messages", expected.len()), |h| {
        let got: Vec<(i64, String)> = h
            .iter()
            .filter(|m| m.text.starts_with(tag))
            .map(|m| (m.seq, m.text.clone()))
            .collect();
        assert!(got.len() <= expected.len(), "more than sent (a duplicate?): {got:?}");
        got == expected
    })
    .await;
}

async fn queued_at(server: &TestServer) -> i64 {
    server.count("SELECT count(*) FROM federation_queue", &[]).await
}

#[tokio::test]
async fn a_follower_that_was_down_receives_everything_once_in_order_and_so_after_a_hub_restart() {
    let mut trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, _ben, group) = pair_group(&trio, dir.path()).await;
    let mut cat = device(trio.server(2), dir.path(), "cat", true).await;
    let mut cat2 = device(trio.server(2), dir.path(), "cat", false).await;
    ann.add_members(&group, &[user(&cat)]).await.expect("add cat");
    joined(&mut cat, &group).await;
    joined(&mut cat2, &group).await;

    // c.test is down while 200 messages are accepted: the hub keeps them queued.
    let c_config = trio.stop(2).await;
    let sent = send_many(&mut ann, &group, 200, "while c was down").await;
    assert!(queued_at(trio.server(0)).await >= 200);
    let metrics = trio.server(0).metrics().await;
    assert!(
        metrics.contains("parley_federation_send_failures_total{reason=\"unreachable\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("parley_federation_queue_depth{destination=\"c.test\"}"),
        "{metrics}"
    );
    trio.start(2, c_config).await;
    has_exactly(&mut cat, &group, "while c was down", &sent).await;
    has_exactly(&mut cat2, &group, "while c was down", &sent).await;
    let a = trio.server(0);
    assert!(
        wait_until(DELIVERY, || async { queued_at(a).await == 0 }).await,
        "the queue for c drains"
    );

    // Now the hub restarts with messages queued for c.test (down again meanwhile).
    let c_config = trio.stop(2).await;
    let sent = send_many(&mut ann, &group, 20, "queued over a hub restart").await;
    let a_config = trio.stop(0).await;
    trio.start(2, c_config).await;
    trio.start(0, a_config).await;
    has_exactly(&mut cat, &group, "queued over a hub restart", &sent).await;
    let a = trio.server(0);
    assert!(wait_until(DELIVERY, || async { queued_at(a).await == 0 }).await);
}

#[tokio::test]
async fn a_gap_in_a_groups_sequence_is_backfilled_from_the_hub() {
    let mut trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, mut ben, group) = pair_group(&trio, dir.path()).await;
    // While b.test is down, a message's queue row is lost: b.test then receives the next
    // message after a gap, and fetches the missing one from the hub.
    let b_config = trio.stop(1).await;
    let lost = ann.send_text(&group, "lost in transit", None).await.expect("send").seq;
    let next = ann.send_text(&group, "after the gap", None).await.expect("send").seq;
    let deleted = trio
        .server(0)
        .db()
        .await
        .execute(
            "DELETE FROM federation_queue WHERE group_id = $1 AND seq = $2",
            &[&group.as_str(), &lost],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    trio.start(1, b_config).await;
    sync_until(&mut ben, &group, "both messages", |h| {
        let seqs: Vec<i64> = h.iter().map(|m| m.seq).collect();
        seqs.contains(&lost) && seqs.contains(&next)
    })
    .await;
    let metrics = trio.server(1).metrics().await;
    assert!(
        metrics.contains("parley_federation_messages_received_total{outcome=\"after_gap\"} 1"),
        "{metrics}"
    );
}

/// A federation client holding server `i`'s certificate and signing key: what that
/// server (or an attacker who took it over) can send.
fn speaking_as(trio: &Trio, i: usize) -> (FederationClient, ServerKeyring) {
    let dir = trio.dirs[i].path();
    let identity = certified_key(&dir.join("tls.pem"), &dir.join("tls.key")).unwrap();
    let peers = (0..3)
        .filter_map(|j| trio.servers[j].as_ref())
        .map(|s| (s.server_name().clone(), s.federation_addr.unwrap()))
        .collect();
    let client = FederationClient::new(
        ServerName::parse(NAMES[i]).unwrap(),
        identity,
        root_store(Some(&ca_file())).unwrap(),
        peers,
        Reach::PublicOnly,
    )
    .unwrap();
    (client, keyring_in(dir))
}

/// Sends a signed request and returns (status, error code).
async fn refusal(
    (client, keys): &(FederationClient, ServerKeyring),
    method: reqwest::Method,
    to: usize,
    path: &str,
    body: &impl serde::Serialize,
) -> (u16, String) {
    let body = serde_json::to_vec(body).unwrap();
    let destination = ServerName::parse(NAMES[to]).unwrap();
    let response = client
        .send(keys, method, &destination, path, body, now_ms())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

fn ordered(group: &GroupId, seq: i64, sender: &Messenger) -> OrderedMessage {
    OrderedMessage {
        group_id: group.clone(),
        seq,
        epoch: 1,
        kind: OrderedKind::Application,
        sender: member_of(sender),
        payload: b"not really MLS".to_vec().into(),
        welcome: None,
        members: None,
        sent_at_ms: now_ms(),
        expires_at_ms: None,
    }
}

#[tokio::test]
async fn servers_that_are_not_a_groups_hub_cannot_order_or_submit_for_others() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (ann, ben, group) = pair_group(&trio, dir.path()).await;
    let _cat = device(trio.server(2), dir.path(), "cat", true).await;
    let as_a = speaking_as(&trio, 0);
    let as_b = speaking_as(&trio, 1);
    let stored = || async {
        trio.server(1)
            .count(
                "SELECT count(*) FROM group_messages WHERE group_id = $1",
                &[&group.as_str()],
            )
            .await
    };
    let before = stored().await;

    // A follower claiming to be the hub: c.test signs, with its own valid key, ordered
    // messages of a group hubbed on a.test and sends them to b.test.
    let as_c = speaking_as(&trio, 2);
    let fake = hub_signature::sign(&as_c.1, ordered(&group, 99, &ann), now_ms());
    let transaction = Transaction { messages: vec![fake] };
    let path = SEND_TRANSACTION.path_with(&["forged-1"]);
    assert_eq!(
        refusal(&as_c, reqwest::Method::PUT, 1, &path, &transaction).await,
        (403, "not_group_hub".to_owned())
    );
    // The hub's own transaction with a message altered after the hub signed it.
    let mut altered = hub_signature::sign(&as_a.1, ordered(&group, 99, &ann), now_ms());
    altered.message.payload = b"something else".to_vec().into();
    let transaction = Transaction {
        messages: vec![altered],
    };
    let path = SEND_TRANSACTION.path_with(&["altered-1"]);
    assert_eq!(
        refusal(&as_a, reqwest::Method::PUT, 1, &path, &transaction).await,
        (401, "invalid_signature".to_owned())
    );
    assert_eq!(stored().await, before, "nothing of a refused transaction is stored");

    // A submit sent to a server that does not hub the group.
    let submit = ForwardedMessage {
        sender: member_of(&ben),
        message: SubmitMessageRequest {
            txn_id: "t1".into(),
            message: b"x".to_vec().into(),
            expires_at: None,
        },
    };
    let path = SUBMIT_MESSAGE.path_with(&[group.as_str()]);
    assert_eq!(
        refusal(&as_b, reqwest::Method::POST, 2, &path, &submit).await,
        (421, "not_hubbed_here".to_owned())
    );
    // c.test submitting, to the hub, for a user of b.test.
    assert_eq!(
        refusal(&as_c, reqwest::Method::POST, 0, &path, &submit).await,
        (403, "sender_not_of_origin".to_owned())
    );
    // c.test has no member in the group: it may not read its messages.
    let backfill = format!("{}?after=0", BACKFILL.path_with(&[group.as_str()]));
    let (client, keys) = &as_c;
    let response = client
        .send(
            keys,
            reqwest::Method::GET,
            &ServerName::parse("a.test").unwrap(),
            &backfill,
            Vec::new(),
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let accepted = trio
        .server(0)
        .count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1",
            &[&group.as_str()],
        )
        .await;
    assert_eq!(accepted, 1, "only the commit that added ben");
}

#[tokio::test]
async fn rotating_a_followers_key_while_messages_flow_refuses_nothing() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, mut ben, group) = pair_group(&trio, dir.path()).await;
    let key_file = trio.dirs[1].path().join("server.key");
    let old = ServerKeyring::load(&key_file).unwrap();
    let mut sent = Vec::new();
    for i in 0..30 {
        if i == 10 {
            let mut rotated = ServerKeyring::load(&key_file).unwrap();
            rotated.rotate(now_ms() + ROTATION_OVERLAP_MS, false);
            rotated.save(&key_file).unwrap();
        }
        // ben's messages are forwarded by b.test (signed with its key) to the hub, which
        // sends them back in transactions: both directions check b.test's keys.
        let from_ben = ben
            .send_text(&group, &format!("ben {i}"), None)
            .await
            .expect("nothing is refused");
        let from_ann = ann
            .send_text(&group, &format!("ann {i}"), None)
            .await
            .expect("nothing is refused");
        sent.extend([from_ben.seq, from_ann.seq]);
    }
    for m in [&mut ann, &mut ben] {
        sync_until(m, &group, "every message", |h| {
            sent.iter().all(|s| h.iter().any(|m| m.seq == *s))
        })
        .await;
    }
    let now = ServerKeyring::load(&key_file).unwrap();
    assert_ne!(now.key_id(), old.key_id(), "the key was rotated");
    let refused = trio.server(0).metrics().await;
    assert!(!refused.contains("outcome=\"invalid_signature\""), "{refused}");
}

#[tokio::test]
async fn a_hub_adds_no_one_from_a_server_it_does_not_federate_with_and_takes_no_oversized_transaction() {
    let trio = trio_with(|i, federation| {
        if i == 0 {
            federation.deny.insert(ServerName::parse("c.test").unwrap());
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_ann, mut ben, group) = pair_group(&trio, dir.path()).await;
    let cat = device(trio.server(2), dir.path(), "cat", true).await;
    // b.test federates with c.test, so ben can claim cat's KeyPackages; the hub refuses
    // the commit that would add her, and ben's server relays that.
    let refused = ben.add_members(&group, &[user(&cat)]).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::ServerNotAllowed), "{refused}");
    let a = trio.server(0);
    assert_eq!(
        a.count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1",
            &[&group.as_str()]
        )
        .await,
        1,
        "only the commit that added ben"
    );
    assert_eq!(
        a.count(
            "SELECT count(*) FROM federation_queue WHERE destination = 'c.test'",
            &[]
        )
        .await,
        0
    );

    // A transaction with more messages than the receiver takes is refused whole.
    let as_a = speaking_as(&trio, 0);
    let messages = (1..=201)
        .map(|seq| hub_signature::sign(&as_a.1, ordered(&group, 100 + seq, &ben), now_ms()))
        .collect();
    let path = SEND_TRANSACTION.path_with(&["too-big"]);
    assert_eq!(
        refusal(&as_a, reqwest::Method::PUT, 1, &path, &Transaction { messages }).await,
        (413, "payload_too_large".to_owned())
    );

    // A sequence number no hub gives (it panicked a worker of a debug build, and was
    // stored silently by a release build) is refused.
    let messages = vec![hub_signature::sign(&as_a.1, ordered(&group, i64::MIN, &ben), now_ms())];
    let path = SEND_TRANSACTION.path_with(&["seq-min"]);
    assert_eq!(
        refusal(&as_a, reqwest::Method::PUT, 1, &path, &Transaction { messages }).await,
        (400, "invalid_param".to_owned())
    );
}

/// A federating server used to get anything stored by a follower: messages of groups in
/// which the follower has no member (10 × 4 MiB accepted), with no size check per
/// message. Now a follower stores only groups where its devices are members per the hub's
/// group state, from the commit that added the first of them, and no message larger than
/// a hub accepts.
#[tokio::test]
async fn a_follower_stores_only_groups_with_members_there_and_no_oversized_message() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (_ann, ben, group) = pair_group(&trio, dir.path()).await;
    let as_a = speaking_as(&trio, 0);
    let b = trio.server(1);
    let stored_in = |group: &GroupId| {
        let group = group.as_str().to_owned();
        async move {
            b.count("SELECT count(*) FROM group_messages WHERE group_id = $1", &[&group])
                .await
        }
    };

    // A group of a.test in which b.test has nobody: acknowledged, nothing stored.
    let strangers = GroupId::parse("strangers@a.test").unwrap();
    let messages = (1..=3)
        .map(|seq| hub_signature::sign(&as_a.1, ordered(&strangers, seq, &ben), now_ms()))
        .collect();
    let path = SEND_TRANSACTION.path_with(&["no-members-here"]);
    let body = serde_json::to_vec(&Transaction { messages }).unwrap();
    let response = as_a
        .0
        .send(
            &as_a.1,
            reqwest::Method::PUT,
            &ServerName::parse(NAMES[1]).unwrap(),
            &path,
            body,
            now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let result: TransactionResult = response.json().await.unwrap();
    assert_eq!((result.stored, result.ignored), (0, 3));
    assert_eq!(stored_in(&strangers).await, 0);
    let followed = b
        .count(
            "SELECT count(*) FROM groups WHERE group_id = $1",
            &[&strangers.as_str()],
        )
        .await;
    assert_eq!(followed, 0, "no row for a group without members here");

    // One message over the hub's size limit refuses the whole transaction.
    let before = stored_in(&group).await;
    let mut large = ordered(&group, 100, &ben);
    large.payload = vec![b'x'; 48 * 1024 + 1].into();
    let messages = vec![hub_signature::sign(&as_a.1, large, now_ms())];
    let path = SEND_TRANSACTION.path_with(&["too-large-message"]);
    assert_eq!(
        refusal(&as_a, reqwest::Method::PUT, 1, &path, &Transaction { messages }).await,
        (413, "payload_too_large".to_owned())
    );
    assert_eq!(stored_in(&group).await, before);
}

/// One user on a follower could spend his whole server's budget at a hub by asking how far
/// a group was delivered, again and again. Each user now has a share of those questions;
/// beyond it, `429` (and the hub is not asked).
#[tokio::test]
async fn a_user_cannot_spend_his_servers_budget_at_a_hub() {
    let trio = trio_with(|i, federation| {
        if i == 1 {
            federation.hub_questions_per_user_per_minute = 5;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (_ann, ben, group) = pair_group(&trio, dir.path()).await;
    for _ in 0..5 {
        ben.client().group_delivery(&group).await.expect("within the share");
    }
    assert_eq!(code(ben.client().group_delivery(&group).await), ErrorCode::RateLimited);
    assert_eq!(code(ben.client().group_info(&group).await), ErrorCode::RateLimited);
}

/// (server, delivered_up_to) of a delivery answer.
fn positions(delivery: &GroupDelivery) -> Vec<(String, i64)> {
    delivery
        .servers
        .iter()
        .map(|s| (s.server.to_string(), s.delivered_up_to))
        .collect()
}

/// Asks through `m`'s server until `done` holds for the answer.
async fn delivery_until(m: &Messenger, group: &GroupId, what: &str, done: impl Fn(&[(String, i64)]) -> bool) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        let delivery = m.client().group_delivery(group).await.expect("delivery");
        assert_eq!(delivery.group_id, *group);
        assert!(!delivery.partial, "{} reached the hub", m.user_id());
        if done(&positions(&delivery)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never saw {what}: {delivery:?}",
            m.user_id()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A signed GET: (status, error code).
async fn signed_get((client, keys): &(FederationClient, ServerKeyring), to: usize, path: &str) -> (u16, String) {
    let destination = ServerName::parse(NAMES[to]).unwrap();
    let response = client
        .send(keys, reqwest::Method::GET, &destination, path, Vec::new(), now_ms())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn each_member_server_reports_how_far_it_received_a_group_through_the_hub() {
    let mut trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, ben, group) = pair_group(&trio, dir.path()).await;
    let path = GROUP_DELIVERY.path_with(&[group.as_str()]);
    // The hub answers servers with members only; only the hub answers.
    let as_c = speaking_as(&trio, 2);
    assert_eq!(signed_get(&as_c, 0, &path).await, (404, "not_found".to_owned()));
    let as_b = speaking_as(&trio, 1);
    assert_eq!(signed_get(&as_b, 2, &path).await, (421, "not_hubbed_here".to_owned()));
    assert_eq!(signed_get(&as_b, 0, &path).await.0, 200);

    let mut cat = device(trio.server(2), dir.path(), "cat", true).await;
    ann.add_members(&group, &[user(&cat)]).await.expect("add cat");
    joined(&mut cat, &group).await;
    let added = ann.client().get_group(&group).await.expect("group").last_seq;
    let everyone_at = |seq: i64| {
        move |p: &[(String, i64)]| {
            p.iter().map(|(s, _)| s.as_str()).eq(NAMES) && p.iter().all(|(_, up_to)| *up_to >= seq)
        }
    };
    delivery_until(&ann, &group, "every server with cat's addition", everyone_at(added)).await;

    // c.test is down: the message reaches a.test (the hub) and b.test, not c.test; the
    // hub's client API and b.test's (forwarded to the hub) say so alike.
    let c_config = trio.stop(2).await;
    let seq = ann.send_text(&group, "while c is down", None).await.expect("send").seq;
    let c_missing = move |p: &[(String, i64)]| {
        p.len() == 3
            && p[0] == ("a.test".to_owned(), seq)
            && p[1] == ("b.test".to_owned(), seq)
            && p[2].0 == "c.test"
            && (added..seq).contains(&p[2].1)
    };
    delivery_until(&ann, &group, "a and b but not c at the message", c_missing).await;
    delivery_until(&ben, &group, "a and b but not c, through the hub", c_missing).await;

    // A device that is not a member learns nothing, on the hub as on a follower.
    let dan = device(trio.server(0), dir.path(), "dan", true).await;
    assert_eq!(code(dan.client().group_delivery(&group).await), ErrorCode::NotAMember);
    let eve = device(trio.server(1), dir.path(), "eve", true).await;
    assert_eq!(code(eve.client().group_delivery(&group).await), ErrorCode::NotAMember);

    // c.test is back: the queue drains and every server has the message.
    trio.start(2, c_config).await;
    delivery_until(&ann, &group, "every server at the message", everyone_at(seq)).await;
    delivery_until(
        &ben,
        &group,
        "every server at the message, through the hub",
        everyone_at(seq),
    )
    .await;

    // With the hub down a follower answers for itself only.
    trio.stop(0).await;
    let partial = ben.client().group_delivery(&group).await.expect("partial delivery");
    assert!(partial.partial, "{partial:?}");
    assert_eq!(positions(&partial), [("b.test".to_owned(), seq)]);
}

fn member_of(m: &Messenger) -> GroupMember {
    GroupMember {
        user_id: user(m),
        device_id: m.device_id().clone(),
    }
}

/// Syncs `sender` until its message `seq` shows `receiver`'s device in `delivered_to`;
/// checks that an `Event::Delivered` said so.
async fn delivered(sender: &mut Messenger, receiver: &Messenger, group: &GroupId, seq: i64) {
    let to = member_of(receiver);
    let events = sync_until(sender, group, "a receipt from the other server", |history| {
        history.iter().any(|m| m.seq == seq && m.delivered_to.contains(&to))
    })
    .await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Delivered { group_id, seq: s, to: t } if group_id == group && *s == seq && *t == to
        )),
        "{events:?}"
    );
}

#[tokio::test]
async fn delivery_receipts_reach_senders_on_other_servers_both_ways() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, mut ben, group) = pair_group(&trio, dir.path()).await;

    // ann on the hub sends; ben on the follower receives (and so acknowledges).
    let sent = ann.send_text(&group, "to ben", None).await.expect("send").seq;
    sync_until(&mut ben, &group, "ann's message", |h| h.iter().any(|m| m.seq == sent)).await;
    delivered(&mut ann, &ben, &group, sent).await;

    // ben on the follower sends; ann on the hub acknowledges.
    let sent = ben.send_text(&group, "to ann", None).await.expect("send").seq;
    sync_until(&mut ann, &group, "ben's message", |h| h.iter().any(|m| m.seq == sent)).await;
    delivered(&mut ben, &ann, &group, sent).await;
}

#[tokio::test]
async fn receipts_for_users_of_another_server_or_devices_outside_the_group_write_nothing() {
    let trio = trio().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut ann, ben, group) = pair_group(&trio, dir.path()).await;
    let cat = device(trio.server(2), dir.path(), "cat", true).await;
    // ben does not sync: his own acknowledgement cannot race the forged receipts.
    let seq = ann.send_text(&group, "to ben", None).await.expect("send").seq;
    let receipts_at_a = || async {
        trio.server(0)
            .count(
                "SELECT count(*) FROM inbox WHERE kind = 3 AND group_id = $1 AND seq = $2",
                &[&group.as_str(), &seq],
            )
            .await
    };
    let receipt = |receiver: &Messenger| ReceiptsRequest {
        receipts: vec![DeliveryReceipt {
            group_id: group.clone(),
            seq,
            sender: member_of(&ann),
            receiver: member_of(receiver),
        }],
    };
    let as_c = speaking_as(&trio, 2);
    // c.test claiming ben@b.test received the message.
    assert_eq!(
        refusal(&as_c, reqwest::Method::POST, 0, RECEIPTS.path, &receipt(&ben)).await,
        (403, "sender_not_of_origin".to_owned())
    );
    // c.test for its own cat, who is not in the group: accepted, written nothing.
    assert_eq!(
        refusal(&as_c, reqwest::Method::POST, 0, RECEIPTS.path, &receipt(&cat)).await,
        (200, String::new())
    );
    // b.test for ben, naming ben (not ann's device) as the message's sender: skipped.
    let as_b = speaking_as(&trio, 1);
    let mut wrong_sender = receipt(&ben);
    wrong_sender.receipts[0].sender = member_of(&ben);
    assert_eq!(
        refusal(&as_b, reqwest::Method::POST, 0, RECEIPTS.path, &wrong_sender).await,
        (200, String::new())
    );
    assert_eq!(receipts_at_a().await, 0, "no receipt written");
    // The genuine receipt is written (for ann's one device).
    assert_eq!(
        refusal(&as_b, reqwest::Method::POST, 0, RECEIPTS.path, &receipt(&ben)).await,
        (200, String::new())
    );
    assert_eq!(receipts_at_a().await, 1);
}
