//! Every client enforces the device key directory: a leaf a hub was made to accept (the
//! real hub refuses them, see `device_keys.rs`) does not get into the receiving device's
//! view. alice's SDK talks to a fake client API (`BehindFakeHub`) that delivers Welcomes
//! and commits crafted with openmls by mallory, a member, and serves the true device
//! lists signed by the users' servers. Each forged leaf is refused and reported with
//! `Event::LeafRefused`; normal Welcomes and commits pass, with a directory lookup only
//! for a user not seen before.

use openmls::prelude::{LeafNodeParameters, MlsGroup};
use parley_federation::ServerKeyring;
use parley_sdk::messenger::{Event, LeafSource, MessengerError, RefusedLeaf};
use parley_specs::groups_api::InboxEntryKind;
use parley_specs::{DeviceId, GroupId, UserId};
use parley_tests::mls::{TestMlsDevice, forged_key_package, key_package_from, serialize};

use crate::helpers::{BehindFakeHub, device, federated_pair, joined, member, sync_until, user};

fn group_id(name: &str) -> GroupId {
    GroupId::parse(&format!("{name}@a.test")).unwrap()
}

fn refusals(events: &[Event]) -> Vec<(LeafSource, Vec<RefusedLeaf>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::LeafRefused { source, leaves, .. } => Some((*source, leaves.clone())),
            _ => None,
        })
        .collect()
}

/// mallory's group with alice (and `others`) joined normally; returns it at epoch 1.
async fn joined_group(s: &mut BehindFakeHub, id: &GroupId, others: &[&TestMlsDevice]) -> MlsGroup {
    let (mut group, _) = s.mallory.create_group(id);
    let mut packages = vec![s.alice_key_package()];
    packages.extend(others.iter().map(|d| key_package_from(&d.key_package(false))));
    let (_, welcome) = s.mallory.add(&mut group, &packages);
    group.merge_pending_commit(&s.mallory.provider).unwrap();
    s.deliver_from_mallory(InboxEntryKind::Welcome, id, 1, welcome);
    let events = s.alice.sync().await.expect("sync");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Joined { group_id, .. } if group_id == id)),
        "alice joins from a normal Welcome: {events:?}"
    );
    group
}

#[tokio::test]
async fn a_welcome_with_a_leaf_in_another_devices_name_is_not_joined() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("forgedwelcome");
    let _bob = s.bob_device().await;
    let (mut group, _) = s.mallory.create_group(&id);
    let bob = UserId::parse("bob@b.test").unwrap();
    let b1 = DeviceId::parse("B1").unwrap();
    // A leaf naming bob's real device with a key mallory holds.
    let (_, welcome) = s
        .mallory
        .add(&mut group, &[s.alice_key_package(), forged_key_package(&bob, &b1)]);
    s.deliver_from_mallory(InboxEntryKind::Welcome, &id, 1, welcome);

    let events = s.alice.sync().await.expect("sync");
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{events:?}");
    let (source, leaves) = &refused[0];
    assert_eq!(*source, LeafSource::Welcome);
    assert_eq!(leaves.len(), 1, "{leaves:?}");
    assert_eq!(leaves[0].claims, Some(member("bob@b.test", "B1")));
    assert!(
        leaves[0].reason.contains("another signature key"),
        "{}",
        leaves[0].reason
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::LeafRefused { by: Some(by), .. } if by == &member("mallory@a.test", "M1"))),
        "the event names who sent it: {events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Joined { .. })), "{events:?}");
    let groups = s.alice.groups().await.unwrap();
    assert!(groups.iter().all(|g| g.group_id != id), "not joined: {groups:?}");
    assert!(
        s.fake.all_acknowledged(),
        "the refused Welcome does not block the inbox"
    );
}

#[tokio::test]
async fn a_commit_renaming_the_committers_leaf_is_not_applied_and_closes_the_conversation() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("renamecommit");
    let mut group = joined_group(&mut s, &id, &[]).await;

    // mallory's update path carries a credential naming bob's device, with her own new key.
    let posing_as_bob = TestMlsDevice::new(&UserId::parse("bob@b.test").unwrap(), &DeviceId::parse("B1").unwrap());
    let commit = s.mallory.rename_commit(&mut group, &posing_as_bob);
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 2, commit);
    let events = s.alice.sync().await.expect("sync");
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{events:?}");
    let (source, leaves) = &refused[0];
    assert_eq!(*source, LeafSource::Commit);
    assert_eq!(leaves[0].claims, Some(member("bob@b.test", "B1")));
    assert_eq!(leaves[0].leaf_index, 0, "mallory's own leaf");
    assert!(
        !events.iter().any(|e| matches!(e, Event::MembersChanged { .. })),
        "the commit is not applied: {events:?}"
    );

    // The conversation is closed on alice's device: it shows why, and takes nothing more.
    let overview = s
        .alice
        .groups()
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.group_id == id)
        .unwrap();
    assert!(
        overview
            .refused
            .as_deref()
            .is_some_and(|r| r.contains("bob@b.test") || r.contains("another signature key")),
        "{overview:?}"
    );
    assert_eq!(overview.epoch, Some(1), "still at the epoch before the refused commit");
    let err = s.alice.send_text(&id, "hi", None).await.expect_err("closed");
    assert!(matches!(err, MessengerError::ConversationRefused { .. }), "{err}");
    assert!(err.to_string().contains("closed"), "{err}");

    // Whatever comes next in the group is not read.
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 3, b"anything".to_vec());
    let events = s.alice.sync().await.expect("sync");
    assert!(events.is_empty(), "{events:?}");
    assert!(s.fake.all_acknowledged());
}

#[tokio::test]
async fn a_commit_adding_a_second_leaf_of_a_device_is_refused() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("twoleaves");
    // The directory says bob/B1 has bob's key; the group already has that leaf.
    let bob = s.bob_device().await;
    let mut group = joined_group(&mut s, &id, &[&bob]).await;
    let forged = forged_key_package(&UserId::parse("bob@b.test").unwrap(), &DeviceId::parse("B1").unwrap());
    let (commit, _) = s.mallory.add(&mut group, &[forged]);
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 2, commit);
    let events = s.alice.sync().await.expect("sync");
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{events:?}");
    let leaf = &refused[0].1[0];
    assert_eq!(leaf.claims, Some(member("bob@b.test", "B1")));
    assert!(leaf.reason.contains("a device has one leaf"), "{}", leaf.reason);
    assert_eq!(leaf.leaf_index, 3, "the new leaf, after alice's and bob's");
}

#[tokio::test]
async fn normal_welcomes_and_commits_pass_with_a_lookup_only_for_users_not_seen_before() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("normalflow");
    let bob = s.bob_device().await;
    // bob's second device is in his list from the start.
    let bob2 = TestMlsDevice::new(&UserId::parse("bob@b.test").unwrap(), &DeviceId::parse("B2").unwrap());
    s.fake
        .set_devices(
            &UserId::parse("bob@b.test").unwrap(),
            &[
                (DeviceId::parse("B1").unwrap(), bob.signer.public().to_vec()),
                (DeviceId::parse("B2").unwrap(), bob2.signer.public().to_vec()),
            ],
            &s.b_key,
        )
        .await;
    let before = s.fake.lookups();
    let mut group = joined_group(&mut s, &id, &[&bob]).await;
    let join_lookups = s.fake.lookups() - before;
    // mallory's and bob's lists; alice's own leaf needs none.
    assert_eq!(join_lookups, 2, "joining a group of three users");

    // A self-update changes no identity or key: nothing to look up.
    let bundle = group
        .self_update(&s.mallory.provider, &s.mallory.signer, LeafNodeParameters::default())
        .unwrap();
    let commit = serialize(bundle.commit());
    group.merge_pending_commit(&s.mallory.provider).unwrap();
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 2, commit);
    let lookups = s.fake.lookups();
    let events = s.alice.sync().await.expect("sync");
    assert!(refusals(&events).is_empty(), "{events:?}");
    assert_eq!(s.fake.lookups(), lookups, "a self-update costs no lookup");

    // Adding a device of a user already seen, present in the cached list: none either.
    let (commit, _) = s.mallory.add(&mut group, &[key_package_from(&bob2.key_package(false))]);
    group.merge_pending_commit(&s.mallory.provider).unwrap();
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 3, commit);
    let events = s.alice.sync().await.expect("sync");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { added, .. } if added == &vec![member("bob@b.test", "B2")])),
        "{events:?}"
    );
    assert_eq!(
        s.fake.lookups(),
        lookups,
        "a known user's listed device costs no lookup"
    );

    // Adding a user not seen before: their list, once.
    let carol = TestMlsDevice::new(&UserId::parse("carol@a.test").unwrap(), &DeviceId::parse("C1").unwrap());
    s.fake
        .set_devices(
            &UserId::parse("carol@a.test").unwrap(),
            &[(DeviceId::parse("C1").unwrap(), carol.signer.public().to_vec())],
            &s.a_key,
        )
        .await;
    let (commit, _) = s
        .mallory
        .add(&mut group, &[key_package_from(&carol.key_package(false))]);
    group.merge_pending_commit(&s.mallory.provider).unwrap();
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 4, commit);
    let events = s.alice.sync().await.expect("sync");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MembersChanged { added, .. } if added == &vec![member("carol@a.test", "C1")])),
        "{events:?}"
    );
    let add_new_user = s.fake.lookups() - lookups;
    assert_eq!(add_new_user, 1, "adding a user not seen before: their list, once");

    // Messages cost nothing.
    let text = serde_json::to_vec(&parley_sdk::messenger::Envelope::Text {
        body: "hello".into(),
        expires_at: None,
        reply_to: None,
    })
    .unwrap();
    let message = s.mallory.encrypt(&mut group, &text);
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 5, message);
    let lookups = s.fake.lookups();
    let events = s.alice.sync().await.expect("sync");
    assert!(events.iter().any(|e| matches!(e, Event::Message { .. })), "{events:?}");
    assert_eq!(s.fake.lookups(), lookups, "a message costs no lookup");
    assert_eq!(s.alice.directory_lookups() as usize, s.fake.lookups());

    // Safety numbers: bob's key is the directory's; computing it again costs nothing more.
    let number = s
        .alice
        .safety_number(&UserId::parse("bob@b.test").unwrap())
        .await
        .expect("safety number");
    assert_eq!(number.contact_devices.len(), 2);
    assert_eq!(number.contact_devices[0].signature_key, hex(bob.signer.public()));
    println!(
        "directory lookups: join (3 users) {join_lookups}, self-update 0, add of a known user's listed device 0, \
         add of a new user {add_new_user}, \
         message 0, safety number {}",
        s.fake.lookups() - lookups
    );
}

#[tokio::test]
async fn a_list_signed_by_another_key_than_the_pinned_one_is_refused() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("keychange");
    let bob = s.bob_device().await;
    let mut group = joined_group(&mut s, &id, &[&bob]).await;
    // b.test's key is pinned now. A relay serving bob's list under another key (a new
    // device, so the list is fetched again) is refused.
    let b2 = TestMlsDevice::new(&UserId::parse("bob@b.test").unwrap(), &DeviceId::parse("B2").unwrap());
    let impostor = ServerKeyring::generate();
    s.fake
        .set_devices(
            &UserId::parse("bob@b.test").unwrap(),
            &[
                (DeviceId::parse("B1").unwrap(), bob.signer.public().to_vec()),
                (DeviceId::parse("B2").unwrap(), b2.signer.public().to_vec()),
            ],
            &impostor,
        )
        .await;
    let (commit, _) = s.mallory.add(&mut group, &[key_package_from(&b2.key_package(false))]);
    s.deliver_from_mallory(InboxEntryKind::Message, &id, 2, commit);
    let events = s.alice.sync().await.expect("sync");
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{events:?}");
    let leaf = &refused[0].1[0];
    assert_eq!(leaf.claims, Some(member("bob@b.test", "B2")));
    assert!(
        leaf.reason.contains("this device knows b.test by key"),
        "{}",
        leaf.reason
    );
}

#[tokio::test]
async fn a_list_signed_days_ago_is_a_replay_and_vouches_for_nothing() {
    let mut s = BehindFakeHub::start().await;
    let id = group_id("replayedlist");
    let bob = s.bob_device().await;
    let two_days_ago = (time::OffsetDateTime::now_utc().unix_timestamp() - 2 * 86_400) * 1000;
    s.fake
        .set_devices_signed_at(
            &UserId::parse("bob@b.test").unwrap(),
            &[(DeviceId::parse("B1").unwrap(), bob.signer.public().to_vec())],
            &s.b_key,
            two_days_ago,
        )
        .await;
    let (mut group, _) = s.mallory.create_group(&id);
    let (_, welcome) = s.mallory.add(
        &mut group,
        &[s.alice_key_package(), key_package_from(&bob.key_package(false))],
    );
    s.deliver_from_mallory(InboxEntryKind::Welcome, &id, 1, welcome);
    let events = s.alice.sync().await.expect("sync");
    let refused = refusals(&events);
    assert_eq!(refused.len(), 1, "{events:?}");
    let leaf = &refused[0].1[0];
    assert_eq!(leaf.claims, Some(member("bob@b.test", "B1")));
    assert!(leaf.reason.contains("signed 48 hours ago"), "{}", leaf.reason);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn with_real_federating_servers_each_new_user_costs_one_lookup_per_process() {
    let pair = federated_pair().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&pair.a, dir.path(), "alice", true).await;
    let mut bob = device(&pair.b, dir.path(), "bob", true).await;

    // alice checks bob's claimed KeyPackage: bob's list, relayed by a.test with b.test's
    // signature and key.
    let group = alice.create_group().await.unwrap();
    let started = std::time::Instant::now();
    alice.add_members(&group, &[user(&bob)]).await.expect("add bob");
    let first_add = started.elapsed();
    assert_eq!(alice.directory_lookups(), 1, "bob's list");
    // bob checks the Welcome's leaves: alice's list (his own leaf needs none).
    joined(&mut bob, &group).await;
    assert_eq!(bob.directory_lookups(), 1, "alice's list");

    // The same people again, in a second group: nothing more to look up.
    let second = alice.create_group().await.unwrap();
    let started = std::time::Instant::now();
    alice.add_members(&second, &[user(&bob)]).await.expect("add bob again");
    let second_add = started.elapsed();
    joined(&mut bob, &second).await;
    assert_eq!((alice.directory_lookups(), bob.directory_lookups()), (1, 1));

    // Messages never look anything up.
    alice.send_text(&group, "hello bob", None).await.expect("send");
    sync_until(&mut bob, &group, "alice's message", |h| {
        h.iter().any(|m| m.text == "hello bob")
    })
    .await;
    assert_eq!((alice.directory_lookups(), bob.directory_lookups()), (1, 1));

    // Both see the same safety number, from the directory's keys.
    let theirs = bob.safety_number(&user(&alice)).await.expect("bob's number");
    let ours = alice.safety_number(&user(&bob)).await.expect("alice's number");
    assert_eq!(ours.digits, theirs.digits);
    println!(
        "real servers: add of a new remote user {first_add:?} (1 lookup), of a known one {second_add:?} (0); \
         joining 1 lookup, then 0"
    );
}
