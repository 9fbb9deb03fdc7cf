//! Groups ordered by the hub: real MLS clients (openmls) through the real homeserver.

use std::collections::BTreeMap;

use openmls::prelude::{KeyPackage, LeafNodeIndex, LeafNodeParameters, MlsGroup};
use parley_sdk::Client;
use parley_specs::groups_api::{InboxEntryKind, InboxQuery, SubmitCommitRequest, SubmitMessageRequest};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::mls::credential_identity;
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, GroupId, UserId};
use parley_tests::TestServer;
use parley_tests::mls::{Processed, TestMlsDevice, key_package_from, serialize};
use rand::distr::{Alphanumeric, SampleString};

use crate::helpers::{registered, signed_in};

/// One device: its homeserver session, its MLS state, and what it has read.
struct Device {
    client: Client,
    mls: TestMlsDevice,
    user: UserId,
    id: DeviceId,
    group: Option<MlsGroup>,
    cursor: i64,
    /// Decrypted application messages by the hub's sequence number.
    received: BTreeMap<i64, Vec<u8>>,
    /// Every message sequence number seen, in arrival order.
    seen: Vec<i64>,
}

impl Device {
    async fn new(server: &TestServer, name: &str, first: bool) -> Self {
        let (client, session) = signed_in(server, name, first).await;
        let mls = TestMlsDevice::new(&session.user_id, &session.device_id);
        let packages = (0..3).map(|_| Base64Bytes::from(mls.key_package(false))).collect();
        client
            .upload_key_packages(&UploadKeyPackagesRequest { key_packages: packages })
            .await
            .expect("upload");
        Self {
            client,
            mls,
            user: session.user_id,
            id: session.device_id,
            group: None,
            cursor: 0,
            received: BTreeMap::new(),
            seen: Vec::new(),
        }
    }

    fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().expect("in a group")
    }

    fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let (mls, group) = (&self.mls, self.group.as_mut().expect("in a group"));
        mls.encrypt(group, plaintext)
    }

    /// The hub accepted our commit: apply it.
    fn merge_pending(&mut self) {
        let (mls, group) = (&self.mls, self.group.as_mut().expect("in a group"));
        group.merge_pending_commit(&mls.provider).expect("merge");
    }

    fn epoch(&self) -> u64 {
        self.group.as_ref().expect("in a group").epoch().as_u64()
    }

    /// Reads and processes everything in the inbox, then acknowledges it.
    async fn sync(&mut self) {
        loop {
            let page = self
                .client
                .read_inbox(&InboxQuery {
                    after: Some(self.cursor),
                    limit: Some(50),
                    timeout_ms: None,
                })
                .await
                .expect("read inbox");
            if page.entries.is_empty() {
                break;
            }
            for entry in page.entries {
                let payload = entry.payload.as_ref().map(|p| p.as_slice().to_vec());
                match entry.kind {
                    InboxEntryKind::Welcome => {
                        self.group = Some(self.mls.join(&payload.expect("welcome bytes")));
                    }
                    InboxEntryKind::Message => {
                        self.seen.push(entry.seq);
                        let bytes = payload.expect("message bytes");
                        let (mls, group) = (&self.mls, self.group.as_mut().expect("in the group"));
                        if let Processed::Application(text) = mls.process(group, &bytes) {
                            self.received.insert(entry.seq, text);
                        }
                    }
                    InboxEntryKind::Receipt => {}
                }
            }
            self.cursor = page.next_cursor;
            self.client.ack_inbox(self.cursor).await.expect("ack");
        }
    }

    async fn send(&mut self, group: &GroupId, text: &str) -> i64 {
        let message = self
            .mls
            .encrypt(self.group.as_mut().expect("in a group"), text.as_bytes());
        let req = SubmitMessageRequest {
            txn_id: txn(),
            message: message.into(),
            expires_at: None,
        };
        let accepted = self.client.submit_message(group, &req).await.expect("send");
        self.received.insert(accepted.seq, text.as_bytes().to_vec());
        accepted.seq
    }

    /// Claims a key package for every device of `user`.
    async fn claim(&self, user: &UserId) -> Vec<KeyPackage> {
        let claimed = self
            .client
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await
            .expect("claim");
        claimed
            .key_packages
            .iter()
            .map(|k| key_package_from(k.key_package.as_slice()))
            .collect()
    }

    /// Adds every device of `users` in one commit.
    async fn add(&mut self, group_id: &GroupId, users: &[UserId]) {
        let mut packages = Vec::new();
        for user in users {
            packages.extend(self.claim(user).await);
        }
        let (mls, group) = (&self.mls, self.group.as_mut().expect("in a group"));
        let (commit, welcome, _) = group.add_members(&mls.provider, &mls.signer, &packages).expect("add");
        let req = SubmitCommitRequest {
            txn_id: txn(),
            commit: serialize(&commit).into(),
            welcome: Some(serialize(&welcome).into()),
            group_info: mls.pending_group_info(group).into(),
        };
        self.client
            .submit_commit(group_id, &req)
            .await
            .expect("commit accepted");
        self.merge_pending();
    }
}

fn txn() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

fn new_group_id(server: &TestServer) -> GroupId {
    GroupId::parse(&format!("{}@{}", txn(), server.server_name())).expect("group id")
}

async fn create(server: &TestServer, creator: &mut Device) -> GroupId {
    let id = new_group_id(server);
    let (group, request) = creator.mls.create_group(&id);
    let summary = creator.client.create_group(&request).await.expect("create group");
    assert_eq!(summary.members.len(), 1);
    creator.group = Some(group);
    id
}

#[tokio::test]
async fn three_users_two_devices_each_see_everything_in_hub_order() {
    let server = TestServer::spawn().await;
    let mut devices = Vec::new();
    for name in ["ann", "ben", "cat"] {
        devices.push(Device::new(&server, name, true).await);
        devices.push(Device::new(&server, name, false).await);
    }
    let group_id = create(&server, &mut devices[0]).await;
    // Ann's first device adds her own second device and both devices of Ben and Cat.
    let others = [
        devices[0].user.clone(),
        devices[2].user.clone(),
        devices[4].user.clone(),
    ];
    let (first, rest) = devices.split_at_mut(1);
    first[0].add(&group_id, &others).await;
    for device in rest.iter_mut() {
        device.sync().await;
        assert_eq!(device.epoch(), 1);
    }
    let summary = devices[0].client.get_group(&group_id).await.expect("group");
    assert_eq!((summary.epoch, summary.members.len()), (1, 6));

    // Everyone sends, interleaved, then everyone syncs.
    let mut sent = BTreeMap::new();
    for round in 0..3 {
        for (i, device) in devices.iter_mut().enumerate() {
            let text = format!("round {round} from device {i}");
            let seq = device.send(&group_id, &text).await;
            sent.insert(seq, text.into_bytes());
        }
    }
    for device in devices.iter_mut() {
        device.sync().await;
    }
    for (i, device) in devices.iter().enumerate() {
        assert_eq!(device.received, sent, "device {i} decrypted everything");
        let own: Vec<_> = device.seen.clone();
        let mut sorted = own.clone();
        sorted.sort();
        assert_eq!(own, sorted, "device {i} received in the hub's order");
    }
    // Acknowledged entries are gone; senders got delivery receipts.
    let inbox: i64 = server.count("SELECT count(*) FROM inbox WHERE kind <> 3", &[]).await;
    assert_eq!(inbox, 0);
    let receipts: i64 = server.count("SELECT count(*) FROM inbox WHERE kind = 3", &[]).await;
    assert!(receipts > 0, "delivery receipts reach the senders' devices");
}

#[tokio::test]
async fn concurrent_commits_one_wins_the_other_catches_up() {
    let server = TestServer::spawn().await;
    let mut a = Device::new(&server, "dora", true).await;
    let mut b = Device::new(&server, "eli", true).await;
    let mut c = Device::new(&server, "fay", true).await;
    let group_id = create(&server, &mut a).await;
    a.add(&group_id, &[b.user.clone(), c.user.clone()]).await;
    b.sync().await;
    c.sync().await;

    // a and b both commit for epoch 1.
    let commit_of = |d: &mut Device| {
        let (mls, group) = (&d.mls, d.group.as_mut().expect("group"));
        let bundle = group
            .self_update(&mls.provider, &mls.signer, LeafNodeParameters::default())
            .expect("update");
        SubmitCommitRequest {
            txn_id: txn(),
            commit: serialize(bundle.commit()).into(),
            welcome: None,
            group_info: mls.pending_group_info(group).into(),
        }
    };
    let (ca, cb) = (commit_of(&mut a), commit_of(&mut b));
    let (ra, rb) = tokio::join!(
        a.client.submit_commit(&group_id, &ca),
        b.client.submit_commit(&group_id, &cb)
    );
    let (winner, loser, loser_result) = match (&ra, &rb) {
        (Ok(_), Err(_)) => (&mut a, &mut b, rb),
        (Err(_), Ok(_)) => (&mut b, &mut a, ra),
        other => panic!("exactly one commit must win: {other:?}"),
    };
    let err = loser_result.expect_err("loser");
    assert_eq!(err.code(), Some(ErrorCode::WrongEpoch));
    match err {
        parley_sdk::Error::Api { body, .. } => assert_eq!(body.current_epoch, Some(2)),
        other => panic!("{other}"),
    }
    winner.merge_pending();
    // The loser drops its commit, processes the winner's, and retries.
    let (mls, group) = (&loser.mls, loser.group.as_mut().expect("group"));
    group
        .clear_pending_commit(openmls::prelude::OpenMlsProvider::storage(&mls.provider))
        .expect("clear");
    loser.sync().await;
    assert_eq!(loser.epoch(), 2);
    let retry = commit_of(loser);
    loser
        .client
        .submit_commit(&group_id, &retry)
        .await
        .expect("the retry is accepted");
    loser.merge_pending();
    winner.sync().await;
    c.sync().await;
    assert_eq!((a.epoch(), b.epoch(), c.epoch()), (3, 3, 3));
    let summary = c.client.get_group(&group_id).await.expect("group");
    assert_eq!((summary.epoch, summary.members.len()), (3, 3));
    // And messages still flow.
    let seq = a.send(&group_id, "still here").await;
    b.sync().await;
    c.sync().await;
    assert_eq!(b.received.get(&seq).map(Vec::as_slice), Some(&b"still here"[..]));
    assert_eq!(c.received.get(&seq).map(Vec::as_slice), Some(&b"still here"[..]));
}

#[tokio::test]
async fn a_removed_member_reads_nothing_more_and_cannot_send() {
    let server = TestServer::spawn().await;
    let mut a = Device::new(&server, "gus", true).await;
    let mut b = Device::new(&server, "hal", true).await;
    let group_id = create(&server, &mut a).await;
    a.add(&group_id, &[b.user.clone()]).await;
    b.sync().await;
    a.send(&group_id, "before").await;
    b.sync().await;

    let b_leaf = a
        .group()
        .members()
        .find(|m| m.credential.serialized_content() == credential_identity(&b.user, &b.id).as_slice())
        .map(|m| m.index)
        .unwrap_or(LeafNodeIndex::new(1));
    let (mls, group) = (&a.mls, a.group.as_mut().expect("group"));
    let (commit, _, _) = group
        .remove_members(&mls.provider, &mls.signer, &[b_leaf])
        .expect("remove");
    let req = SubmitCommitRequest {
        txn_id: txn(),
        commit: serialize(&commit).into(),
        welcome: None,
        group_info: mls.pending_group_info(group).into(),
    };
    a.client.submit_commit(&group_id, &req).await.expect("removal accepted");
    a.merge_pending();

    let after = a.send(&group_id, "after the removal").await;
    b.sync().await; // b processes the commit that removes it
    assert!(!b.group().is_active(), "b knows it was removed");
    assert!(!b.received.contains_key(&after), "b got nothing sent after its removal");
    let rows: i64 = server
        .count("SELECT count(*) FROM inbox WHERE device_id = $1", &[&b.id.as_str()])
        .await;
    assert_eq!(rows, 0);

    // Its sends are refused (with a message made before the removal, still well formed).
    let stale = b.mls.encrypt(&mut a.mls.create_group(&new_group_id(&server)).0, b"x");
    let req = SubmitMessageRequest {
        txn_id: txn(),
        message: stale.into(),
        expires_at: None,
    };
    let err = b.client.submit_message(&group_id, &req).await.expect_err("refused");
    assert!(
        matches!(err.code(), Some(ErrorCode::NotAMember | ErrorCode::GroupMismatch)),
        "{err}"
    );
    assert_eq!(
        b.client.get_group(&group_id).await.expect_err("hidden").code(),
        Some(ErrorCode::NotAMember)
    );
}

/// A non-member gets one answer from every group endpoint, whether the group exists or
/// not: reads and submissions alike tell it nothing about which groups exist.
#[tokio::test]
async fn a_non_member_cannot_tell_an_existing_group_from_an_unknown_one() {
    let server = TestServer::spawn().await;
    let (mut a, _b, existing) = pair(&server, "noor", "omar").await;
    let outsider = Device::new(&server, "piet", true).await;
    let unknown = new_group_id(&server);
    for group in [&existing, &unknown] {
        // Well-formed MLS for that group id, from a group of the outsider's own.
        let (mut own, _) = outsider.mls.create_group(group);
        let message = SubmitMessageRequest {
            txn_id: txn(),
            message: outsider.mls.encrypt(&mut own, b"let me in").into(),
            expires_at: None,
        };
        let bundle = own
            .self_update(
                &outsider.mls.provider,
                &outsider.mls.signer,
                LeafNodeParameters::default(),
            )
            .expect("self update");
        let commit = SubmitCommitRequest {
            txn_id: txn(),
            commit: serialize(bundle.commit()).into(),
            welcome: None,
            group_info: outsider.mls.pending_group_info(&own).into(),
        };
        let client = &outsider.client;
        let answers = [
            ("get", client.get_group(group).await.map(drop)),
            ("message", client.submit_message(group, &message).await.map(drop)),
            ("commit", client.submit_commit(group, &commit).await.map(drop)),
            ("delivery", client.group_delivery(group).await.map(drop)),
        ];
        for (what, answer) in answers {
            let err = answer.expect_err(what);
            assert_eq!(err.code(), Some(ErrorCode::NotAMember), "{what} on {group}: {err}");
        }
    }
    // The members' group is unchanged.
    a.send(&existing, "still here").await;
}

/// Two devices in a group: `a` created it and added `b`.
async fn pair(server: &TestServer, a_name: &str, b_name: &str) -> (Device, Device, GroupId) {
    let mut a = Device::new(server, a_name, true).await;
    let mut b = Device::new(server, b_name, true).await;
    let group_id = create(server, &mut a).await;
    a.add(&group_id, &[b.user.clone()]).await;
    b.sync().await;
    (a, b, group_id)
}

#[tokio::test]
async fn an_offline_device_gets_all_100_in_order_once_across_a_restart() {
    let server = TestServer::spawn().await;
    let (mut a, mut b, group_id) = pair(&server, "ivy", "jon").await;
    let mut sent = Vec::new();
    for i in 0..50 {
        sent.push(a.send(&group_id, &format!("message {i}")).await);
    }
    let config = server.stop().await;
    let _server = TestServer::start(config).await;
    for i in 50..100 {
        sent.push(a.send(&group_id, &format!("message {i}")).await);
    }
    b.sync().await;
    let seen_messages: Vec<i64> = b.seen.iter().copied().filter(|seq| sent.contains(seq)).collect();
    assert_eq!(seen_messages, sent, "all 100, in order, once");
    for (i, seq) in sent.iter().enumerate() {
        assert_eq!(b.received[seq], format!("message {i}").into_bytes());
    }
}

#[tokio::test]
async fn long_poll_wakes_up_when_a_message_arrives() {
    let server = TestServer::spawn().await;
    let (mut a, b, group_id) = pair(&server, "kay", "lou").await;
    let cursor = b
        .client
        .read_inbox(&InboxQuery::default())
        .await
        .expect("read")
        .next_cursor;
    let waiting = {
        let client = b.client.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let page = client
                .read_inbox(&InboxQuery {
                    after: Some(cursor),
                    limit: None,
                    timeout_ms: Some(20_000),
                })
                .await
                .expect("long-poll");
            (page, started.elapsed())
        })
    };
    // Give the reader time to start waiting (either way the assertions hold: an entry that
    // is already there is returned at once).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let seq = a.send(&group_id, "wake up").await;
    let (page, waited) = waiting.await.expect("task");
    assert_eq!(page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![seq]);
    assert!(
        waited < std::time::Duration::from_secs(10),
        "woken by the message, not the timeout: {waited:?}"
    );
}

#[tokio::test]
async fn retried_submits_are_stored_once() {
    let server = TestServer::spawn().await;
    let (mut a, _b, group_id) = pair(&server, "max", "ned").await;
    let message = a.encrypt(b"only once");
    let req = SubmitMessageRequest {
        txn_id: "retry-me".into(),
        message: message.into(),
        expires_at: None,
    };
    // A retry racing its original, and one after it: all get the first answer.
    let (first, racing) = tokio::join!(
        a.client.submit_message(&group_id, &req),
        a.client.submit_message(&group_id, &req)
    );
    let (first, racing) = (first.expect("first"), racing.expect("racing retry"));
    let second = a.client.submit_message(&group_id, &req).await.expect("retry");
    assert_eq!(first, racing);
    assert_eq!(first, second);
    let stored: i64 = server
        .count("SELECT count(*) FROM group_messages WHERE txn_id = 'retry-me'", &[])
        .await;
    assert_eq!(stored, 1);
    let entries: i64 = server
        .count("SELECT count(*) FROM inbox WHERE kind = 1 AND seq = $1", &[&first.seq])
        .await;
    assert_eq!(entries, 1, "fanned out once");
}

/// Submissions arriving together are written in shared transactions: every group still
/// numbers its messages without gaps, every inbox lists them in that order, and a refused
/// submission in the same batch changes nothing for the others.
#[tokio::test]
async fn concurrent_sends_to_several_groups_keep_each_groups_order_without_gaps() {
    const PER_SENDER: usize = 25;
    let server = TestServer::spawn().await;
    let (mut a, mut b, first) = pair(&server, "quinn", "rosa").await;
    let (mut c, mut d, second) = pair(&server, "sven", "tara").await;
    // Each device sends in order (its MLS ratchet expects that); the four go at once.
    let mut senders = Vec::new();
    for (device, group) in [(&mut a, &first), (&mut b, &first), (&mut c, &second), (&mut d, &second)] {
        let requests: Vec<_> = (0..PER_SENDER)
            .map(|i| SubmitMessageRequest {
                txn_id: txn(),
                message: device.encrypt(format!("message {i}").as_bytes()).into(),
                expires_at: None,
            })
            .collect();
        senders.push((device.client.clone(), group.clone(), requests));
    }
    // An outsider's submission (a group of its own under the same id) rides along and is
    // refused alone.
    let (mut lookalike, _) = c.mls.create_group(&first);
    let outsider_req = SubmitMessageRequest {
        txn_id: txn(),
        message: c.mls.encrypt(&mut lookalike, b"not in this group").into(),
        expires_at: None,
    };
    let outsider = c.client.submit_message(&first, &outsider_req);
    let sends = futures_util::future::join_all(senders.iter().map(|(client, group, requests)| async move {
        for req in requests {
            client.submit_message(group, req).await.expect("accepted");
        }
    }));
    let (_, outsider) = tokio::join!(sends, outsider);
    assert_eq!(crate::helpers::code(outsider), ErrorCode::NotAMember);
    for group in [&first, &second] {
        let seqs = server.stored_seqs(group).await;
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "no gaps in {group}");
        assert_eq!(seqs.len(), 2 * PER_SENDER + 1, "the add commit and every message");
    }
    for device in [&mut a, &mut b, &mut c, &mut d] {
        device.sync().await;
        assert_eq!(device.received.len(), PER_SENDER, "the other member's messages");
        let mut sorted = device.seen.clone();
        sorted.sort_unstable();
        assert_eq!(device.seen, sorted, "inbox order is the hub's order");
    }
}

#[tokio::test]
async fn expired_messages_are_never_served_and_are_deleted() {
    let server = TestServer::spawn_with(|c| c.limits.expiry_sweep_interval_secs = 1).await;
    let (mut a, mut b, group_id) = pair(&server, "oda", "pia").await;
    let message = a.encrypt(b"this disappears");
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let req = SubmitMessageRequest {
        txn_id: txn(),
        message: message.into(),
        expires_at: Some(expires_at),
    };
    let accepted = a.client.submit_message(&group_id, &req).await.expect("send");
    let db = server.db().await;
    let gone = parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM group_messages WHERE seq = $1 AND group_id = $2",
                &[&accepted.seq, &group_id.as_str()],
            )
            .await
            .expect("row")
            .get(0);
        n == 0
    })
    .await;
    assert!(gone, "the sweep deleted the expired message");
    let entries: i64 = db
        .query_one("SELECT count(*) FROM inbox WHERE seq = $1", &[&accepted.seq])
        .await
        .expect("row")
        .get(0);
    assert_eq!(entries, 0);
    b.sync().await;
    assert!(!b.seen.contains(&accepted.seq), "never served");
}

#[tokio::test]
async fn bad_submissions_get_their_error_and_change_nothing() {
    let server = TestServer::spawn_with(|c| c.limits.max_message_bytes = 4096).await;
    let (mut a, mut b, group_id) = pair(&server, "quy", "rex").await;
    let outsider = Device::new(&server, "sid", true).await;
    let good = a.encrypt(b"fine");
    let db = server.db().await;
    let count = || async {
        let row = db
            .query_one(
                "SELECT count(*) FROM group_messages WHERE group_id = $1",
                &[&group_id.as_str()],
            )
            .await
            .expect("row");
        row.get::<_, i64>(0)
    };
    let before = count().await;

    let msg = |bytes: Vec<u8>| SubmitMessageRequest {
        txn_id: txn(),
        message: bytes.into(),
        expires_at: None,
    };
    let commit = |bytes: Vec<u8>| SubmitCommitRequest {
        txn_id: txn(),
        commit: bytes.into(),
        welcome: None,
        group_info: Vec::new().into(),
    };
    let cases: Vec<(&str, Result<_, parley_sdk::Error>, ErrorCode)> = vec![
        (
            "random bytes",
            a.client
                .submit_message(&group_id, &msg(b"\x00\x01\x02 not mls".to_vec()))
                .await,
            ErrorCode::InvalidMlsMessage,
        ),
        (
            "truncated",
            a.client
                .submit_message(&group_id, &msg(good[..good.len() / 2].to_vec()))
                .await,
            ErrorCode::InvalidMlsMessage,
        ),
        (
            "oversize",
            a.client.submit_message(&group_id, &msg(vec![0; 5000])).await,
            ErrorCode::PayloadTooLarge,
        ),
        (
            "non-member",
            outsider.client.submit_message(&group_id, &msg(good.clone())).await,
            ErrorCode::NotAMember,
        ),
        (
            "random commit",
            a.client.submit_commit(&group_id, &commit(vec![7; 64])).await,
            ErrorCode::InvalidMlsMessage,
        ),
        (
            "application as commit",
            a.client.submit_commit(&group_id, &commit(good.clone())).await,
            ErrorCode::InvalidMlsMessage,
        ),
    ];
    for (what, result, want) in cases {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Some(want), "{what}: {err}");
    }
    // Another group's message in this group's path.
    let (mut c, _d, other_group) = pair(&server, "tom", "uma").await;
    let foreign = c.encrypt(b"elsewhere");
    let err = a
        .client
        .submit_message(&group_id, &msg(foreign))
        .await
        .expect_err("mismatch");
    assert_eq!(err.code(), Some(ErrorCode::GroupMismatch));
    let _ = other_group;

    // A commit for a past epoch: b commits at epoch 1 after a moved the group to 2.
    let update = |d: &mut Device| {
        let (mls, group) = (&d.mls, d.group.as_mut().expect("group"));
        let bundle = group
            .self_update(&mls.provider, &mls.signer, LeafNodeParameters::default())
            .expect("update");
        SubmitCommitRequest {
            group_info: mls.pending_group_info(group).into(),
            ..commit(serialize(bundle.commit()))
        }
    };
    let a_commit = update(&mut a);
    // A GroupInfo that is not of the state the commit leaves (here: of the epoch before).
    let old_info = {
        let (mls, group) = (&a.mls, a.group.as_ref().expect("group"));
        let info = group
            .export_group_info(
                openmls::prelude::OpenMlsProvider::crypto(&mls.provider),
                &mls.signer,
                false,
            )
            .expect("group info");
        serialize(&info)
    };
    let wrong_info = SubmitCommitRequest {
        txn_id: txn(),
        group_info: old_info.into(),
        ..a_commit.clone()
    };
    let err = a
        .client
        .submit_commit(&group_id, &wrong_info)
        .await
        .expect_err("wrong group info");
    assert_eq!(err.code(), Some(ErrorCode::InvalidMlsMessage), "{err}");
    a.client.submit_commit(&group_id, &a_commit).await.expect("a's commit");
    a.merge_pending();
    let stale = update(&mut b);
    let err = b.client.submit_commit(&group_id, &stale).await.expect_err("stale");
    assert_eq!(err.code(), Some(ErrorCode::WrongEpoch));
    // One valid commit was added; every refused submission left nothing behind.
    assert_eq!(count().await, before + 1);
    let summary = a.client.get_group(&group_id).await.expect("group");
    assert_eq!(summary.epoch, 2);
}

#[tokio::test]
async fn the_websocket_pushes_entries_as_they_arrive() {
    let server = TestServer::spawn().await;
    let (mut a, mut b, group_id) = pair(&server, "val", "wes").await;
    let mut stream = b.client.inbox_stream(b.cursor).await.expect("connect");
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(a.send(&group_id, &format!("pushed {i}")).await);
    }
    let mut got = Vec::new();
    while got.len() < 3 {
        let entry = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .expect("pushed within 30 s")
            .expect("stream open")
            .expect("entry");
        let plaintext = match b.mls.process(
            b.group.as_mut().expect("group"),
            entry.payload.expect("payload").as_slice(),
        ) {
            Processed::Application(text) => text,
            Processed::Commit => panic!("expected an application message"),
        };
        got.push((entry.seq, plaintext));
        b.cursor = entry.cursor;
    }
    let expected: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, seq)| (*seq, format!("pushed {i}").into_bytes()))
        .collect();
    assert_eq!(got, expected);

    stream.ack(b.cursor).await.expect("ack");
    let db = server.db().await;
    let acked = parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM inbox WHERE device_id = $1", &[&b.id.as_str()])
            .await
            .expect("row")
            .get(0);
        n == 0
    })
    .await;
    assert!(acked, "an acknowledgement on the socket deletes the entries");

    // A plain GET (no upgrade) gets a JSON error, not a bare 400.
    let plain = server
        .http()
        .get(server.endpoint_url(parley_specs::endpoints::client::INBOX_STREAM.path))
        .bearer_auth(b.client.access_token().expect("token"))
        .send()
        .await
        .expect("send");
    assert_eq!(plain.status().as_u16(), 400);
    let body: parley_specs::ErrorBody = plain.json().await.expect("JSON error body");
    assert_eq!(body.error, ErrorCode::InvalidParam);

    let anonymous = server.sdk();
    let refused = anonymous.inbox_stream(0).await.expect_err("needs a token");
    assert!(matches!(refused, parley_sdk::Error::NotLoggedIn));
    let forged = server.sdk().with_access_token("pat_forged");
    let refused = forged.inbox_stream(0).await.expect_err("forged token");
    assert_eq!(refused.code(), Some(ErrorCode::UnknownToken), "{refused}");
}

#[tokio::test]
async fn metrics_count_messages_refusals_fanout_and_push_latency() {
    let server = TestServer::spawn().await;
    let (mut a, mut b, group_id) = pair(&server, "xia", "yan").await;
    a.send(&group_id, "counted").await;
    let refused = SubmitMessageRequest {
        txn_id: txn(),
        message: b"junk".to_vec().into(),
        expires_at: None,
    };
    a.client
        .submit_message(&group_id, &refused)
        .await
        .expect_err("junk is refused");
    b.sync().await;
    let text = server.metrics().await;
    for needle in [
        r#"parley_messages_accepted_total{kind="application"} 1"#,
        r#"parley_messages_accepted_total{kind="commit"} 1"#,
        r#"parley_messages_rejected_total{reason="invalid_mls_message"} 1"#,
        "parley_fanout_devices_count 2",
        "parley_push_latency_seconds_count",
        "parley_inbox_depth",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn sends_are_rate_limited_per_device_and_groups_have_a_size_limit() {
    let server = TestServer::spawn_with(|c| {
        // Commits count too: the add, the refused add, then 2 messages fit in 4.
        c.limits.messages_per_device_per_minute = 4;
        c.limits.max_group_size = 2;
    })
    .await;
    let (mut a, _b, group_id) = pair(&server, "zed", "amy").await;

    // A third device would exceed max_group_size = 2.
    let c = Device::new(&server, "bea", true).await;
    let packages = a.claim(&c.user).await;
    let (mls, group) = (&a.mls, a.group.as_mut().expect("group"));
    let (commit, welcome, _) = group.add_members(&mls.provider, &mls.signer, &packages).expect("add");
    let group_info = mls.pending_group_info(group);
    group
        .clear_pending_commit(openmls::prelude::OpenMlsProvider::storage(&mls.provider))
        .expect("clear");
    let req = SubmitCommitRequest {
        txn_id: txn(),
        commit: serialize(&commit).into(),
        welcome: Some(serialize(&welcome).into()),
        group_info: group_info.into(),
    };
    let err = a.client.submit_commit(&group_id, &req).await.expect_err("too big");
    assert_eq!(err.code(), Some(ErrorCode::GroupFull));
    let summary = a.client.get_group(&group_id).await.expect("group");
    assert_eq!((summary.epoch, summary.members.len()), (1, 2), "nothing changed");

    for i in 0..2 {
        a.send(&group_id, &format!("allowed {i}")).await;
    }
    let message = a.encrypt(b"one too many");
    let req = SubmitMessageRequest {
        txn_id: txn(),
        message: message.into(),
        expires_at: None,
    };
    let err = a
        .client
        .submit_message(&group_id, &req)
        .await
        .expect_err("rate limited");
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    assert!(err.retry_after().is_some_and(|d| d.as_secs() >= 1), "{err}");
}

#[tokio::test]
async fn a_long_poll_may_outlast_the_clients_request_timeout() {
    let server = TestServer::spawn().await;
    let (_, session) = registered(&server, "cid").await;
    let ca = std::fs::read(server.ca_file()).expect("CA");
    let client = parley_sdk::Client::builder(server.url.parse().expect("url"), parley_sdk::Trust::CaPem(ca))
        .timeout(std::time::Duration::from_secs(1))
        .access_token(session.access_token)
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let page = client
        .read_inbox(&InboxQuery {
            after: None,
            limit: None,
            timeout_ms: Some(2_000),
        })
        .await
        .expect("an empty page after the wait, not a client timeout");
    assert!(page.entries.is_empty());
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_900));
}

/// 200 WebSockets used to be accepted for one device. A device now holds at most
/// `limits.inbox_streams_per_device` on a process; one more gets `429`, and a closed one
/// frees its place.
#[tokio::test]
async fn a_device_holds_a_bounded_number_of_inbox_streams() {
    let server = TestServer::spawn_with(|c| c.limits.inbox_streams_per_device = 3).await;
    let (client, _) = crate::helpers::registered(&server, "sam").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(client.inbox_stream(0).await.expect("within the limit"));
    }
    let refused = client.inbox_stream(0).await.expect_err("over the limit");
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited), "{refused}");
    drop(open.pop());
    let reopened = parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
        client.inbox_stream(0).await.is_ok()
    })
    .await;
    assert!(reopened, "a closed stream frees its place");
}

/// Idle inbox WebSockets wait for wake-ups and never read the database by themselves; the
/// safety net for a lost wake-up (here: an entry written with no notification at all, as
/// by a process that crashed between its commit and its NOTIFY) is the process's periodic
/// re-check, one query for all its readers, which wakes the one reader concerned.
#[tokio::test]
async fn idle_inbox_streams_cost_no_queries_and_a_lost_wake_up_is_caught_up() {
    const STREAMS_PER_DEVICE: usize = 7;
    let server = TestServer::spawn_with(|c| c.limits.inbox_recheck_secs = 1).await;
    let (mut a, b, group_id) = pair(&server, "idris", "jana").await;
    let mut streams = Vec::new();
    for device in [&a, &b] {
        for _ in 0..STREAMS_PER_DEVICE {
            streams.push(device.client.inbox_stream(i64::MAX / 2).await.expect("connect"));
        }
    }
    let mut watched = b.client.inbox_stream(b.cursor).await.expect("connect");
    let rechecks = || async {
        let metrics = server.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("parley_inbox_rechecks_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Reads of inboxes go through the inbox's primary key: count them while the streams
    // sit idle through three re-check rounds.
    let inbox_reads = || async {
        server
            .count(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'inbox_pkey'",
                &[],
            )
            .await
    };
    // PostgreSQL publishes a connection's statistics up to 10 s after its queries: let
    // those of the setup (and of each stream's first read) arrive before counting.
    let rounds_after = |n: f64| async move {
        let from = rechecks().await;
        let ran = parley_tests::wait_until(std::time::Duration::from_secs(60), || async {
            rechecks().await >= from + n
        })
        .await;
        assert!(ran, "the re-check runs every second");
    };
    rounds_after(11.0).await;
    let reads_before = inbox_reads().await;
    rounds_after(3.0).await;
    // Three rounds of per-stream polling would be 45 reads, visible within 10 s.
    let reads_during = parley_tests::wait_until(std::time::Duration::from_secs(11), || async {
        inbox_reads().await - reads_before >= streams.len() as i64
    })
    .await;
    let reads = inbox_reads().await - reads_before;
    assert!(
        !reads_during,
        "{} idle streams read the inbox {reads} times in three re-check rounds",
        streams.len() + 1
    );

    // An entry whose wake-up was lost: a message of the group put in b's inbox by hand.
    let seq = a.send(&group_id, "first").await;
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), watched.next())
        .await
        .expect("pushed")
        .expect("open")
        .expect("entry");
    assert_eq!(first.seq, seq);
    let db = server.db().await;
    db.execute(
        "WITH p AS (UPDATE devices SET inbox_position = inbox_position + 1 WHERE device_id = $1
                    RETURNING inbox_position)
         INSERT INTO inbox (device_id, position, kind, group_id, seq) SELECT $1, inbox_position, 1, $2, $3 FROM p",
        &[&b.id.as_str(), &group_id.as_str(), &seq],
    )
    .await
    .expect("write without a wake-up");
    let caught_up = tokio::time::timeout(std::time::Duration::from_secs(30), watched.next())
        .await
        .expect("caught up by the re-check")
        .expect("open")
        .expect("entry");
    assert_eq!((caught_up.seq, caught_up.cursor), (seq, first.cursor + 1));
    drop(streams);
}
