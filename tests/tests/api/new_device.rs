//! A person's new device joins their conversations by itself (an MLS external commit from
//! the GroupInfo and ratchet tree the hub keeps), with every other device offline; and
//! the hub refuses external joins that are not a member user's own new device.

use std::path::Path;
use std::time::Duration;

use openmls::prelude::{BasicCredential, CredentialWithKey};
use openmls_rust_crypto::OpenMlsRustCrypto;
use parley_sdk::Client;
use parley_sdk::messenger::{Event, Messenger, Verification};
use parley_specs::groups_api::{GroupInfoResponse, SubmitCommitRequest};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::mls::credential_identity;
use parley_specs::{DeviceId, ErrorCode, GroupId, UserId};
use parley_tests::TestServer;
use parley_tests::mls::{TestMlsDevice, external_join, key_package_from};

use crate::helpers::{DELIVERY, PASSPHRASE, code, federated_pair, joined, signed_in, store_path, sync_until};

/// A signed-in device with its messenger, which can be dropped (the device goes offline)
/// and opened again from its store.
struct Phone {
    client: Client,
    user: UserId,
    device: DeviceId,
    path: std::path::PathBuf,
}

impl Phone {
    async fn sign_in(server: &TestServer, dir: &Path, name: &str, first: bool) -> (Self, Messenger) {
        let (client, session) = signed_in(server, name, first).await;
        let phone = Self {
            path: store_path(dir, name, session.device_id.as_str()),
            client,
            user: session.user_id,
            device: session.device_id,
        };
        let mut messenger = phone.open().await;
        messenger.sync().await.expect("first sync");
        (phone, messenger)
    }

    async fn open(&self) -> Messenger {
        Messenger::open(
            self.client.clone(),
            self.user.clone(),
            self.device.clone(),
            &self.path,
            PASSPHRASE,
        )
        .await
        .expect("open the store")
    }
}

fn device_added(events: &[Event], group: &GroupId, user: &UserId, device: &DeviceId) -> bool {
    events.iter().any(|e| {
        matches!(e, Event::DeviceAdded { group_id, user: u, device: d }
            if group_id == group && u == user && d.device_id == *device)
    })
}

#[tokio::test]
async fn a_new_device_joins_its_users_conversations_while_every_other_device_is_offline() {
    let pair = federated_pair().await;
    let dir = tempfile::tempdir().unwrap();
    let (ann, mut ann_m) = Phone::sign_in(&pair.a, dir.path(), "ann", true).await;
    let (bob, mut bob_m) = Phone::sign_in(&pair.b, dir.path(), "bob", true).await;

    // One group hubbed on bob's server, one on ann's.
    let on_b = bob_m.create_group().await.expect("create on b");
    bob_m
        .add_members(&on_b, std::slice::from_ref(&ann.user))
        .await
        .expect("add ann");
    let on_a = ann_m.create_group().await.expect("create on a");
    ann_m
        .add_members(&on_a, std::slice::from_ref(&bob.user))
        .await
        .expect("add bob");
    joined(&mut ann_m, &on_b).await;
    joined(&mut bob_m, &on_a).await;
    for group in [&on_a, &on_b] {
        ann_m
            .send_text(group, "before bob's new device", None)
            .await
            .expect("send");
    }
    // Ann has verified bob: a device of his she has not seen must warn her.
    ann_m.mark_verified(&bob.user).await.expect("verify bob");
    // Everyone goes offline.
    drop(ann_m);
    drop(bob_m);

    // Bob's new device: its first operation joins both conversations, within seconds.
    let started = tokio::time::Instant::now();
    let (phone, mut phone_m) = Phone::sign_in(&pair.b, dir.path(), "bob", false).await;
    let joined_now: Vec<GroupId> = phone_m
        .groups()
        .await
        .expect("groups")
        .into_iter()
        .filter(|g| g.member)
        .map(|g| g.group_id)
        .collect();
    assert!(
        joined_now.contains(&on_a) && joined_now.contains(&on_b),
        "the new device is in both conversations: {joined_now:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "joined in {:?}",
        started.elapsed()
    );
    for group in [&on_a, &on_b] {
        // The hub lists it at once; bob's server, following the group on ann's, soon.
        let deadline = tokio::time::Instant::now() + DELIVERY;
        loop {
            let listed = phone.client.get_group(group).await.map(|g| g.members);
            if listed
                .as_ref()
                .is_ok_and(|m| m.iter().any(|m| m.device_id == phone.device))
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{listed:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its history starts at the join.
        assert!(phone_m.history(group, None).await.expect("history").is_empty());
    }

    // Ann comes back: she sees bob's new device in both groups, with the warning for a
    // verified contact, then writes; the new device reads it.
    let mut ann_m = ann.open().await;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + DELIVERY;
    while !(device_added(&events, &on_a, &bob.user, &phone.device)
        && device_added(&events, &on_b, &bob.user, &phone.device))
    {
        events.extend(ann_m.receive(Duration::from_millis(500)).await.expect("receive"));
        assert!(
            tokio::time::Instant::now() < deadline,
            "ann never saw the new device: {events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::VerifiedContactChanged { user, .. } if *user == bob.user)),
        "{events:?}"
    );
    assert!(matches!(
        ann_m.verification(&bob.user).await.expect("verification"),
        Verification::Changed { .. }
    ));
    // Until she accepts the change, she cannot write to bob.
    ann_m
        .acknowledge_change(&bob.user)
        .await
        .expect("accept bob's new device");
    for group in [&on_a, &on_b] {
        ann_m
            .send_text(group, "hello bob's new device", None)
            .await
            .expect("send");
        sync_until(&mut phone_m, group, "ann's message", |h| {
            h.iter().any(|m| m.text == "hello bob's new device")
        })
        .await;
    }
    // The new device writes too, and ann reads it.
    phone_m
        .send_text(&on_a, "from the new device", None)
        .await
        .expect("send");
    sync_until(&mut ann_m, &on_a, "the new device's message", |h| {
        h.iter().any(|m| m.text == "from the new device")
    })
    .await;

    // Bob's first device, back online, sees its sibling too.
    let mut bob_m = bob.open().await;
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + DELIVERY;
    while !device_added(&events, &on_b, &bob.user, &phone.device) {
        events.extend(bob_m.receive(Duration::from_millis(500)).await.expect("receive"));
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never saw the new device: {events:?}"
        );
    }
}

/// A raw MLS device of a registered user, its signature key bound by a KeyPackage upload.
async fn raw_device(server: &TestServer, name: &str, first: bool) -> (Client, UserId, DeviceId, TestMlsDevice) {
    let (client, session) = signed_in(server, name, first).await;
    let mls = TestMlsDevice::new(&session.user_id, &session.device_id);
    let upload = UploadKeyPackagesRequest {
        key_packages: vec![mls.key_package(false).into(), mls.key_package(true).into()],
    };
    client.upload_key_packages(&upload).await.expect("upload");
    (client, session.user_id, session.device_id, mls)
}

fn submit(info: &parley_tests::mls::ExternalJoin) -> SubmitCommitRequest {
    SubmitCommitRequest {
        txn_id: format!("join-{}", rand::random::<u32>()),
        commit: info.commit.clone().into(),
        welcome: None,
        group_info: info.group_info.clone().into(),
    }
}

#[tokio::test]
async fn the_hub_refuses_external_joins_of_non_members_and_joins_that_remove_someone() {
    let server = TestServer::spawn().await;
    let (ann, _, _, ann_mls) = raw_device(&server, "ann", true).await;
    let (bob1, bob_user, _, bob1_mls) = raw_device(&server, "bob", true).await;
    let group_id = GroupId::parse(&format!("g1@{}", server.server_name())).unwrap();
    let (mut group, create) = ann_mls.create_group(&group_id);
    ann.create_group(&create).await.expect("create");
    let claimed = ann
        .claim_key_packages(&ClaimKeyPackagesRequest {
            user_id: bob_user.clone(),
        })
        .await
        .expect("claim");
    let packages: Vec<_> = claimed
        .key_packages
        .iter()
        .map(|k| key_package_from(k.key_package.as_slice()))
        .collect();
    let (commit, welcome) = ann_mls.add(&mut group, &packages);
    let add = SubmitCommitRequest {
        txn_id: "add-bob".into(),
        commit: commit.into(),
        welcome: Some(welcome.clone().into()),
        group_info: ann_mls.pending_group_info(&group).into(),
    };
    ann.submit_commit(&group_id, &add).await.expect("add bob");
    group.merge_pending_commit(&ann_mls.provider).expect("merge");
    let _bob_group = bob1_mls.join(&welcome);

    // The hub serves the GroupInfo and tree to member devices and to bob's other devices,
    // never to other users.
    let info: GroupInfoResponse = ann.group_info(&group_id).await.expect("ann is a member");
    assert_eq!(info.epoch, 1);
    bob1.group_info(&group_id).await.expect("bob is a member");
    let (mallory, _, _, mallory_mls) = raw_device(&server, "mallory", true).await;
    assert_eq!(code(mallory.group_info(&group_id).await), ErrorCode::NotFound);
    assert!(
        mallory.list_joinable_groups().await.expect("list").groups.is_empty(),
        "nothing of others' groups"
    );

    // Mallory got the GroupInfo somehow (it is no secret to members): joining by herself
    // is refused, she has no device in the group.
    let forced = mallory_mls.external_join(info.group_info.as_slice(), info.ratchet_tree.as_slice());
    assert_eq!(
        code(mallory.submit_commit(&group_id, &submit(&forced)).await),
        ErrorCode::ExternalJoinRefused
    );

    // Bob's new device lists the group as joinable and may fetch its GroupInfo ...
    let (bob2, _, bob2_device, bob2_mls) = raw_device(&server, "bob", false).await;
    let joinable = bob2.list_joinable_groups().await.expect("joinable");
    assert_eq!(
        joinable.groups.iter().map(|g| &g.group_id).collect::<Vec<_>>(),
        vec![&group_id]
    );
    let info = bob2.group_info(&group_id).await.expect("bob's new device may ask");
    // ... but a join that also removes a leaf (openmls removes the leaf carrying the
    // joiner's signature key: here bob's first device) is refused.
    let stolen_key = CredentialWithKey {
        credential: BasicCredential::new(credential_identity(&bob_user, &bob2_device)).into(),
        signature_key: bob1_mls.credential.signature_key.clone(),
    };
    let removing = external_join(
        &OpenMlsRustCrypto::default(),
        &bob1_mls.signer,
        stolen_key,
        info.group_info.as_slice(),
        info.ratchet_tree.as_slice(),
    );
    let refused = bob2
        .submit_commit(&group_id, &submit(&removing))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Some(ErrorCode::ExternalJoinRefused), "{refused}");
    assert!(refused.to_string().contains("removes"), "{refused}");
    // A member device cannot join again.
    let again = bob1_mls.external_join(info.group_info.as_slice(), info.ratchet_tree.as_slice());
    assert_eq!(
        code(bob1.submit_commit(&group_id, &submit(&again)).await),
        ErrorCode::ExternalJoinRefused
    );
    let summary = ann.get_group(&group_id).await.expect("group");
    assert_eq!((summary.epoch, summary.members.len()), (1, 2), "nothing changed");

    // The proper join of bob's new device is accepted; ann receives the commit.
    let mut join = bob2_mls.external_join(info.group_info.as_slice(), info.ratchet_tree.as_slice());
    let accepted = bob2.submit_commit(&group_id, &submit(&join)).await.expect("joined");
    assert_eq!(accepted.epoch, 2);
    let summary = ann.get_group(&group_id).await.expect("group");
    assert!(summary.members.iter().any(|m| m.device_id == bob2_device));
    let served = bob2.group_info(&group_id).await.expect("the new epoch's info");
    assert_eq!(served.group_info.as_slice(), join.group_info.as_slice());
    assert!(bob2.list_joinable_groups().await.expect("list").groups.is_empty());
    let inbox = ann
        .read_inbox(&parley_specs::groups_api::InboxQuery::default())
        .await
        .expect("inbox");
    let commit = inbox.entries.last().expect("the join reached ann");
    assert_eq!(commit.sender.device_id, bob2_device);
    ann_mls.process(&mut group, commit.payload.as_ref().expect("payload").as_slice());
    // And they talk.
    let hello = ann_mls.encrypt(&mut group, b"welcome, new device");
    let req = parley_specs::groups_api::SubmitMessageRequest {
        txn_id: "hello".into(),
        message: hello.into(),
        expires_at: None,
    };
    ann.submit_message(&group_id, &req).await.expect("send");
    let inbox = bob2
        .read_inbox(&parley_specs::groups_api::InboxQuery::default())
        .await
        .expect("inbox");
    let entry = inbox.entries.last().expect("the message reached the new device");
    let got = bob2_mls.process(&mut join.group, entry.payload.as_ref().expect("payload").as_slice());
    assert_eq!(
        got,
        parley_tests::mls::Processed::Application(b"welcome, new device".to_vec())
    );
}
