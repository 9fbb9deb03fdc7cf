//! The SDK's messenger (MLS state and history sealed at rest) through the real homeserver:
//! several users with several devices each, real MLS, real PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use parley_sdk::messenger::{Event, ExportFormat, Messenger, MessengerError, Verification};
use parley_specs::groups_api::GroupMember;
use parley_specs::{Base64Bytes, ErrorCode, GroupId, UserId};
use parley_tests::TestServer;

use crate::helpers::{PASSPHRASE, device, history_texts, lines, registered, send_in_turn, store_path, user};

async fn members(m: &mut Messenger, group: &GroupId) -> BTreeSet<(String, String)> {
    m.members(group)
        .await
        .expect("members")
        .into_iter()
        .map(|d| (d.user_id.to_string(), d.device_id.to_string()))
        .collect()
}

#[tokio::test]
async fn several_users_and_devices_share_one_history_in_hub_order_and_removal_locks_out() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut devices = [
        device(&server, dir.path(), "ann", true).await,
        device(&server, dir.path(), "ann", false).await,
        device(&server, dir.path(), "ben", true).await,
        device(&server, dir.path(), "ben", false).await,
        device(&server, dir.path(), "cat", true).await,
        device(&server, dir.path(), "cat", false).await,
    ];
    let group = devices[0].create_group().await.expect("create");
    assert!(group.as_str().ends_with(&format!("@{}", server.server_name())));
    let users: Vec<UserId> = [0, 2, 4].iter().map(|&i| user(&devices[i])).collect();
    let added = devices[0].add_members(&group, &users).await.expect("add");
    assert_eq!(
        added.added.len(),
        5,
        "ann's other device and both of ben's and cat's: {added:?}"
    );
    assert_eq!(added.epoch, 1);
    for d in devices.iter_mut().skip(1) {
        let events = d.sync().await.expect("sync");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Joined { group_id, .. } if *group_id == group)),
            "{events:?}"
        );
    }

    // Everyone sends, interleaved; ben's second device listens on the WebSocket.
    let sent = send_in_turn(&mut devices, &group, 2).await;
    let mut pushed = Vec::new();
    while pushed.len() < sent.len() - 2 {
        let events = tokio::time::timeout(Duration::from_secs(30), devices[3].receive(Duration::from_secs(10)))
            .await
            .expect("pushed in time")
            .expect("receive");
        pushed.extend(events.into_iter().filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.seq),
            _ => None,
        }));
    }
    assert!(devices[3].receiving_over_websocket(), "pushed over the WebSocket");
    let mut in_order = pushed.clone();
    in_order.sort();
    assert_eq!(pushed, in_order, "received in the hub's order");
    for (i, d) in devices.iter_mut().enumerate() {
        let events = d.sync().await.expect("sync");
        assert!(
            !events.iter().any(|e| matches!(e, Event::Undecryptable { .. })),
            "device {i}: {events:?}"
        );
        let history = d.history(&group, None).await.expect("history");
        assert_eq!(lines(&history), sent, "device {i} has everything in hub order");
    }
    // Delivery receipts reached the senders.
    devices[0].sync().await.expect("sync");
    let own = devices[0].history(&group, Some("from device 0")).await.expect("search");
    assert_eq!(own.len(), 2);
    assert!(own.iter().all(|m| !m.delivered_to.is_empty()), "{own:?}");

    // Cat is removed: both of cat's devices learn it, read nothing more, cannot send.
    let cat = user(&devices[4]);
    let removed = devices[0].remove_members(&group, &[cat]).await.expect("remove");
    assert_eq!(removed.removed.len(), 2);
    let after = devices[2].send_text(&group, "after cat left", None).await;
    let after = after.expect("send after removal").seq;
    for cat in &mut devices[4..] {
        let events = cat.sync().await.expect("sync");
        assert!(events.iter().any(|e| matches!(e, Event::Removed { .. })), "{events:?}");
        let history = cat.history(&group, None).await.expect("history stays readable");
        assert!(history.iter().all(|m| m.seq < after), "nothing after the removal");
        let refused = cat.send_text(&group, "still here?", None).await.expect_err("removed");
        assert!(matches!(refused, MessengerError::NotAMember(_)), "{refused}");
    }
    for d in &mut devices[..4] {
        d.sync().await.expect("sync");
        assert_eq!(members(d, &group).await.len(), 4);
    }
    let summary = devices[1].client().get_group(&group).await.expect("hub view");
    assert_eq!((summary.members.len(), summary.epoch), (4, 2));
}

#[tokio::test]
async fn concurrent_adds_converge() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "dora", true).await;
    let mut ben = device(&server, dir.path(), "eli", true).await;
    let mut cat = device(&server, dir.path(), "fay", true).await;
    let mut dan = device(&server, dir.path(), "gil", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add ben");
    // Adding is for admins (the creator is one): ann makes ben one too.
    ann.promote(&group, &user(&ben)).await.expect("promote ben");
    ben.sync().await.expect("join");

    // Both commit for epoch 2: one wins, the other catches up and retries.
    let (cat_id, dan_id) = (user(&cat), user(&dan));
    let (by_ann, by_ben) = tokio::join!(
        ann.add_members(&group, std::slice::from_ref(&cat_id)),
        ben.add_members(&group, std::slice::from_ref(&dan_id))
    );
    let (by_ann, by_ben) = (by_ann.expect("ann's add"), by_ben.expect("ben's add"));
    assert_eq!(by_ann.added.len() + by_ben.added.len(), 2);
    assert_eq!(BTreeSet::from([by_ann.epoch, by_ben.epoch]), BTreeSet::from([3, 4]));
    for d in [&mut ann, &mut ben, &mut cat, &mut dan] {
        d.sync().await.expect("sync");
    }
    let expected = members(&mut ann, &group).await;
    assert_eq!(expected.len(), 4);
    for d in [&mut ben, &mut cat, &mut dan] {
        assert_eq!(members(d, &group).await, expected);
    }
    for d in [&mut ann, &mut ben, &mut cat, &mut dan] {
        let overview = d.groups().await.expect("groups");
        assert_eq!(overview[0].epoch, Some(4), "{}", d.user_id());
    }
    // And messages flow to everyone.
    let seq = dan.send_text(&group, "hello all", None).await.expect("send").seq;
    for d in [&mut ann, &mut ben, &mut cat] {
        d.sync().await.expect("sync");
        let history = d.history(&group, None).await.expect("history");
        assert_eq!(
            history.last().map(|m| (m.seq, m.text.as_str())),
            Some((seq, "hello all"))
        );
    }
}

#[tokio::test]
async fn expired_messages_are_deleted_locally_and_messages_can_be_deleted_and_exported() {
    let server = TestServer::spawn_with(|c| c.limits.expiry_sweep_interval_secs = 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "hal", true).await;
    let mut ben = device(&server, dir.path(), "ida", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add");
    ben.sync().await.expect("join");

    // Ben receives by long-poll this time.
    ben.set_websocket_enabled(false);
    let waiting = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.is_empty() {
            got = ben.receive(Duration::from_secs(10)).await.expect("receive");
        }
        (ben, got)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = ann.send_text(&group, "this one stays", None).await.expect("send");
    let (mut ben, got) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("long-poll answered")
        .expect("task");
    assert!(!ben.receiving_over_websocket());
    assert!(
        matches!(&got[..], [Event::Message { message, .. }] if message.seq == kept.seq),
        "{got:?}"
    );
    let doomed = ann
        .send_text(&group, "this one disappears", Some(Duration::from_secs(3)))
        .await
        .expect("send");
    assert!(doomed.expires_at.is_some());
    let gone_too = ann.send_text(&group, "deleted by hand", None).await.expect("send");
    ben.sync().await.expect("sync");
    let history = ben.history(&group, None).await.expect("history");
    assert_eq!(history.len(), 3);
    assert!(history[1].expires_at.is_some(), "the expiry travels with the message");

    ben.delete_message(&group, gone_too.seq).await.expect("delete");
    let err = ben
        .delete_message(&group, gone_too.seq)
        .await
        .expect_err("already gone");
    assert!(matches!(err, MessengerError::UnknownMessage { .. }), "{err}");

    tokio::time::sleep(Duration::from_secs(4)).await;
    for d in [&mut ann, &mut ben] {
        let texts = history_texts(d, &group).await;
        assert!(!texts.iter().any(|t| t.contains("disappears")), "{texts:?}");
    }
    // Deleted for real: not in the sealed store either.
    let store = std::fs::read(store_path(dir.path(), "ida", ben.device_id().as_str())).expect("store");
    let plaintext = parley_sdk::sealed::open(PASSPHRASE.as_bytes(), &store).expect("open the store");
    let plaintext = String::from_utf8_lossy(&plaintext);
    assert!(plaintext.contains("this one stays"));
    assert!(!plaintext.contains("disappears") && !plaintext.contains("deleted by hand"));

    let json: serde_json::Value =
        serde_json::from_str(&ben.export(&group, ExportFormat::Json).await.expect("export")).expect("JSON");
    assert_eq!(json["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["messages"][0]["seq"], kept.seq);
    let text = ben.export(&group, ExportFormat::Text).await.expect("export");
    assert!(
        text.contains(&format!("#{}  {}: this one stays", kept.seq, ann.user_id())),
        "{text}"
    );
}

#[tokio::test]
async fn the_store_holds_nothing_readable_and_needs_the_passphrase() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "jon", true).await;
    let mut ben = device(&server, dir.path(), "kim", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add");
    ben.sync().await.expect("join");
    let secret_text = "the launch code is 0000-TOP-SECRET";
    ann.send_text(&group, secret_text, None).await.expect("send");
    ben.sync().await.expect("sync");

    let path = store_path(dir.path(), "kim", ben.device_id().as_str());
    let raw = std::fs::read(&path).expect("store");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    // Decrypted, the store does hold the message and the signing key...
    let plaintext = parley_sdk::sealed::open(PASSPHRASE.as_bytes(), &raw).expect("open");
    assert!(String::from_utf8_lossy(&plaintext).contains(secret_text));
    let private_key = signing_private_key(&plaintext[8..], ben.signature_key());
    assert_eq!(private_key.len(), 32, "an Ed25519 private key");
    // ...and the file on disk neither, in any usual encoding.
    for needle in [
        secret_text.as_bytes().to_vec(),
        private_key.clone(),
        hex_bytes(&private_key),
        serde_json::to_string(&Base64Bytes(private_key.clone()))
            .expect("base64")
            .into_bytes(),
        ben.signature_key().to_vec(),
        group.as_str().as_bytes().to_vec(),
    ] {
        assert!(
            !contains(&raw, &needle),
            "the store leaks {:?}",
            String::from_utf8_lossy(&needle)
        );
    }

    // The wrong passphrase is refused with a clear error; the right one opens.
    let (session_user, session_device) = (ben.user_id().clone(), ben.device_id().clone());
    let client = ben.client().clone();
    drop(ben);
    let err = Messenger::open(
        client.clone(),
        session_user.clone(),
        session_device.clone(),
        &path,
        "not the passphrase",
    )
    .await
    .expect_err("wrong passphrase");
    assert!(matches!(err, MessengerError::WrongPassphrase { .. }), "{err}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    let mut reopened = Messenger::open(client, session_user, session_device, &path, PASSPHRASE)
        .await
        .expect("reopen");
    let history = reopened.history(&group, None).await.expect("history");
    assert_eq!(history.last().map(|m| m.text.as_str()), Some(secret_text));
    // Another device's session cannot use this store.
    let (other_client, other) = registered(&server, "lea").await;
    let err = Messenger::open(other_client, other.user_id, other.device_id, &path, PASSPHRASE)
        .await
        .expect_err("another device");
    assert!(matches!(err, MessengerError::StoreOfAnotherDevice { .. }), "{err}");
    // A new store needs a real passphrase.
    let (c, s) = registered(&server, "max").await;
    let err = Messenger::open(c, s.user_id, s.device_id, dir.path().join("new.sealed"), "short")
        .await
        .expect_err("weak");
    assert!(matches!(err, MessengerError::WeakPassphrase(_)), "{err}");
}

/// The private key of the signature key pair whose public key is `public`, found in the
/// decrypted store's MLS storage (a JSON value with `private` and `public` byte arrays).
fn signing_private_key(json: &[u8], public: &[u8]) -> Vec<u8> {
    let state: serde_json::Value = serde_json::from_slice(json).expect("store JSON");
    let entries = state["mls"].as_array().expect("mls storage");
    let bytes = |v: &serde_json::Value| -> Option<Vec<u8>> {
        v.as_array()?.iter().map(|n| n.as_u64().map(|n| n as u8)).collect()
    };
    for entry in entries {
        let decoded: Base64Bytes = serde_json::from_value(entry[1].clone()).expect("base64 value");
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(decoded.as_slice()) else {
            continue;
        };
        if bytes(&value["public"]).as_deref() == Some(public)
            && let Some(private) = bytes(&value["private"])
        {
            return private;
        }
    }
    panic!("no signature key pair in the store");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn safety_numbers_agree_and_warn_when_a_verified_contact_adds_a_device() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "ned", true).await;
    let mut ben = device(&server, dir.path(), "ola", true).await;
    let err = ann.safety_number(&user(&ben)).await.expect_err("nothing shared yet");
    assert!(matches!(err, MessengerError::NoSharedGroup(_)), "{err}");
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add");
    ben.sync().await.expect("join");

    let seen_by_ann = ann.safety_number(&user(&ben)).await.expect("number");
    let seen_by_ben = ben.safety_number(&user(&ann)).await.expect("number");
    assert_eq!(seen_by_ann.digits, seen_by_ben.digits);
    assert_eq!(seen_by_ann.groups().len(), 12);
    assert!(seen_by_ann.groups().iter().all(|g| g.len() == 5));
    assert_eq!(seen_by_ann.verification, Verification::Unverified);
    let verified = ann.mark_verified(&user(&ben)).await.expect("verify");
    assert!(matches!(verified.verification, Verification::Verified { .. }));

    // Ben adds a second device to the group.
    let mut ben2 = device(&server, dir.path(), "ola", false).await;
    ben.add_members(&group, &[user(&ben)])
        .await
        .expect("ben adds his new device");
    ben2.sync().await.expect("join");
    let events = ann.sync().await.expect("sync");
    let warning = events
        .iter()
        .find_map(|e| match e {
            Event::VerifiedContactChanged { user, added, removed } => {
                Some((user.clone(), added.clone(), removed.clone()))
            }
            _ => None,
        })
        .expect("a warning");
    assert_eq!(warning.0, user(&ben));
    assert_eq!(warning.1.len(), 1);
    assert_eq!(&warning.1[0].device_id, ben2.device_id());
    assert!(warning.2.is_empty());
    let now = ann.safety_number(&user(&ben)).await.expect("number");
    assert_ne!(now.digits, seen_by_ann.digits, "the number changed");
    assert!(matches!(now.verification, Verification::Changed { .. }), "{now:?}");
    for b in [&mut ben, &mut ben2] {
        b.sync().await.expect("sync");
        assert_eq!(b.safety_number(&user(&ann)).await.expect("number").digits, now.digits);
    }
    // The warning is given once; verifying again clears it.
    assert!(
        !ann.sync()
            .await
            .expect("sync")
            .iter()
            .any(|e| matches!(e, Event::VerifiedContactChanged { .. }))
    );
    let again = ann.mark_verified(&user(&ben)).await.expect("verify again");
    assert!(matches!(again.verification, Verification::Verified { .. }));
    let err = ann.safety_number(&user(&ann)).await.expect_err("own");
    assert!(matches!(err, MessengerError::OwnSafetyNumber(_)));
}

#[tokio::test]
async fn leaving_asks_the_others_to_remove_and_deletes_the_conversation() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "pam", true).await;
    let mut ben = device(&server, dir.path(), "quo", true).await;
    let mut cat = device(&server, dir.path(), "ray", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben), user(&cat)]).await.expect("add");
    ben.sync().await.expect("join");
    cat.sync().await.expect("join");
    ann.send_text(&group, "before cat leaves", None).await.expect("send");
    cat.sync().await.expect("sync");

    let left = cat.leave_group(&group).await.expect("leave");
    assert!(left.announced);
    assert_eq!(left.messages_deleted, 1);
    assert!(cat.groups().await.expect("groups").is_empty());
    assert!(matches!(
        cat.history(&group, None).await,
        Err(MessengerError::UnknownGroup(_))
    ));

    // The first other member online removes cat's devices.
    let events = ann.sync().await.expect("sync");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::LeaveAnnounced { user: leaver, .. } if *leaver == user(&cat))),
        "{events:?}"
    );
    let events = ben.sync().await.expect("sync");
    assert!(
        events.iter().any(|e| matches!(e, Event::MembersChanged { removed, .. }
            if removed.iter().all(|m: &GroupMember| m.user_id == user(&cat)) && !removed.is_empty())),
        "{events:?}"
    );
    let summary = ann.client().get_group(&group).await.expect("hub view");
    assert_eq!(summary.members.len(), 2);
    assert!(summary.members.iter().all(|m| m.user_id != user(&cat)));
    // Cat's device gets nothing more, and its (left) store ignores what was queued.
    cat.sync().await.expect("sync");
    assert!(cat.groups().await.expect("groups").is_empty());
    let refused = cat.client().get_group(&group).await.expect_err("not a member");
    assert_eq!(refused.code(), Some(ErrorCode::NotAMember));
}

#[tokio::test]
async fn two_processes_of_one_device_share_its_store() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "sam", true).await;
    let (client, session) = registered(&server, "tia").await;
    let path = store_path(dir.path(), "tia", session.device_id.as_str());
    let open = |client: parley_sdk::Client| {
        Messenger::open(
            client,
            session.user_id.clone(),
            session.device_id.clone(),
            path.clone(),
            PASSPHRASE,
        )
    };
    // Like `parley listen` in one terminal and `parley send` in another.
    let mut listening = open(client.clone()).await.expect("open");
    listening.sync().await.expect("publish keys");
    let mut sending = open(client).await.expect("open the same store");
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&listening)]).await.expect("add");
    ann.send_text(&group, "one", None).await.expect("send");

    let events = listening.sync().await.expect("sync");
    assert!(events.iter().any(|e| matches!(e, Event::Joined { .. })), "{events:?}");
    // The other process sees what this one stored, and builds on it.
    assert_eq!(lines(&sending.history(&group, None).await.expect("history")).len(), 1);
    sending.send_text(&group, "two", None).await.expect("send");
    assert_eq!(listening.history(&group, None).await.expect("history").len(), 2);

    // Both read the inbox at once: each entry is processed once, by one of them.
    ann.send_text(&group, "three", None).await.expect("send");
    let (a, b) = tokio::join!(listening.receive(Duration::from_secs(5)), sending.sync());
    let all: Vec<Event> = a.expect("receive").into_iter().chain(b.expect("sync")).collect();
    let messages = all.iter().filter(|e| matches!(e, Event::Message { .. })).count();
    assert_eq!(messages, 1, "{all:?}");
    assert!(!all.iter().any(|e| matches!(e, Event::Undecryptable { .. })), "{all:?}");
    for m in [&mut listening, &mut sending] {
        assert_eq!(history_texts(m, &group).await, ["one", "two", "three"]);
    }
    ann.sync().await.expect("sync");
    assert_eq!(history_texts(&mut ann, &group).await, ["one", "two", "three"]);
}
