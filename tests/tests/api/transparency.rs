//! Key transparency with real servers and real proofs: a device a server adds behind its
//! user's back is seen by her devices and shown to her contacts as newly published; a
//! server that shows two roots for one epoch, skips an epoch or goes backwards fails its
//! peer's audit; tampered proofs, badly signed roots and older roots are refused by the
//! client.

use std::path::Path;
use std::time::Duration;

use parley_federation::ServerKeyring;
use parley_federation::transparency_root;
use parley_sdk::messenger::{DirectoryError, Event, Messenger, MessengerError};
use parley_specs::endpoints::admin;
use parley_specs::transparency_api::SignedRoot;
use parley_specs::{DeviceId, Localpart, UserId};
use parley_tests::TestServer;
use parley_tests::admin::{AdminApi, enable_admin};
use parley_tests::server::wait_until;

use crate::helpers::{BehindFakeHub, a_and_b_configs, device, federated_pair, user};

/// Generous: servers publish every 100 ms and audit every second in these tests.
const DEADLINE: Duration = Duration::from_secs(30);

/// a.test and b.test (b.test with an admin API, auditing a.test every `audit_secs`).
async fn pair_with_admin(a_dir: &Path, b_dir: &Path, audit_secs: u64) -> (TestServer, TestServer) {
    let (a_config, mut b_config) = a_and_b_configs(a_dir, b_dir).await;
    enable_admin(&mut b_config, b_dir);
    b_config.transparency.audit_interval_secs = audit_secs;
    (TestServer::start(a_config).await, TestServer::start(b_config).await)
}

/// Waits until `m`'s own device is published on its server (its first check of its own
/// account takes what is published then as known).
async fn published_self(m: &mut Messenger) {
    let me = user(m);
    let published = m.published_devices(&me).await.expect("own devices");
    assert!(
        published.devices.iter().any(|d| &d.device_id == m.device_id()),
        "{published:?}"
    );
    m.sync().await.expect("sync");
}

/// b.test's failed audits of a.test, from its admin API.
async fn audit_failures(b: &TestServer) -> Vec<String> {
    let status = AdminApi::of(b).ok(admin::TRANSPARENCY_STATUS, &[], None).await;
    status["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter(|f| f["server"] == "a.test")
        .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// a.test's signed root of its latest epoch, as stored.
async fn latest_root(a: &TestServer) -> SignedRoot {
    let row = a
        .db()
        .await
        .query_one("SELECT signed FROM transparency_roots ORDER BY epoch DESC LIMIT 1", &[])
        .await
        .expect("a root");
    serde_json::from_value(row.get(0)).expect("a signed root")
}

#[tokio::test]
async fn a_device_added_behind_alices_back_is_seen_by_her_device_and_shown_to_her_contacts() {
    let pair = federated_pair().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&pair.a, dir.path(), "alice", true).await;
    let mut bob = device(&pair.b, dir.path(), "bob", true).await;
    published_self(&mut alice).await;
    let before = bob.published_devices(&user(&alice)).await.expect("alice's devices");
    assert_eq!(before.devices.len(), 1, "{before:?}");
    let first_epoch = before.since_epoch.expect("published");

    // a.test, compromised, gives alice a device through its own store, as its code would.
    let evil = DeviceId::parse("EVILDEVICE").unwrap();
    let evil_key = ServerKeyring::generate().public_key().to_bytes();
    let pool = parley_homeserver::db::create_pool(&pair.a.config.database).expect("a.test's pool");
    parley_homeserver::store::devices::insert(
        &pool.get().await.expect("a connection"),
        &Localpart::parse("alice").unwrap(),
        &evil,
        "not alice's",
        &[7u8; 32],
        Some(evil_key.as_slice()),
    )
    .await
    .expect("a device behind alice's back");

    // Her device sees it at its next syncs, with the epoch and time it was published.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut alert = None;
    while alert.is_none() && tokio::time::Instant::now() < deadline {
        let events = alice.sync().await.expect("sync");
        alert = events.into_iter().find_map(|e| match e {
            Event::UnknownOwnDevice { alert } => Some(alert),
            _ => None,
        });
        if alert.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(alert.is_some(), "alice's device did not notice the new device");
    let alert = alert.unwrap();
    assert_eq!(alert.device_id, evil);
    assert!(alert.epoch > first_epoch, "{alert:?}");
    assert!(alert.published_at_ms.is_some(), "{alert:?}");
    assert_eq!(
        alice.device_alerts(),
        vec![alert.clone()],
        "kept for `parley devices audit`"
    );
    assert!(alice.accept_device_alert(&evil).await.unwrap());
    assert!(alice.device_alerts()[0].accepted);

    // bob's device shows the device, published in a newer epoch (once b.test's copy of
    // alice's list, kept for seconds, is fetched again).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let after = loop {
        let published = bob
            .published_devices(&user(&alice))
            .await
            .expect("alice's devices again");
        if published.devices.iter().any(|d| d.device_id == evil) {
            break published;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's device never saw it: {published:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after.since_epoch, Some(alert.epoch));
}

#[tokio::test]
async fn two_roots_for_one_epoch_are_caught_by_the_auditing_server_and_by_the_client() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // b.test audits on demand only here, so the lookup below meets the second root first.
    let (a, b) = pair_with_admin(a_dir.path(), b_dir.path(), 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&a, dir.path(), "alice", true).await;
    let mut carol = device(&a, dir.path(), "carol", true).await;
    let mut bob = device(&b, dir.path(), "bob", true).await;
    published_self(&mut alice).await;
    published_self(&mut carol).await;
    // b.test audits a.test when it relays alice's list to bob.
    bob.published_devices(&user(&alice)).await.expect("alice's devices");
    assert!(audit_failures(&b).await.is_empty());

    // a.test signs another root for the same epoch and proves lists against it from now
    // on: what a server showing one log to its auditors and another to lookups does.
    let mut other = latest_root(&a).await;
    let epoch = other.root.epoch;
    other.root.root_hash = vec![0x55; 32].into();
    let keyring = ServerKeyring::load(&a.config.federation.as_ref().unwrap().signing_key).expect("a.test's key");
    let other = transparency_root::sign(&keyring, other.root);
    let stored = serde_json::to_value(&other).unwrap();
    a.db()
        .await
        .execute(
            "UPDATE transparency_roots SET signed = $2 WHERE epoch = $1",
            &[&i64::try_from(epoch).unwrap(), &stored],
        )
        .await
        .unwrap();

    // carol's list (not cached by b.test) comes with the other root: bob's device sees
    // it differ from the one b.test audited.
    let refused = bob.published_devices(&user(&carol)).await.expect_err("a split view");
    assert!(
        matches!(&refused, MessengerError::Directory(DirectoryError::SplitView { epoch: e, .. }) if *e == epoch),
        "{refused:?}"
    );
    // b.test recorded it (admin API, metric) and refuses a.test's lists from now on.
    let failures = audit_failures(&b).await;
    assert!(failures.iter().any(|f| f.contains("split view")), "{failures:?}");
    assert!(
        b.metrics()
            .await
            .contains("parley_transparency_audit_failures_total{server=\"a.test\"} 1"),
        "the failure is counted"
    );
    let later = bob.published_devices(&user(&alice)).await.expect_err("refused");
    assert!(format!("{later}").contains("failed an audit"), "{later}");
}

#[tokio::test]
async fn a_server_skipping_an_epoch_fails_its_audit() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // On demand only: b.test audits a.test when a list needs a newer epoch.
    let (a, b) = pair_with_admin(a_dir.path(), b_dir.path(), 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&a, dir.path(), "alice", true).await;
    let mut bob = device(&b, dir.path(), "bob", true).await;
    published_self(&mut alice).await;
    bob.published_devices(&user(&alice)).await.expect("alice's devices");
    let audited = latest_root(&a).await.root.epoch;

    // Two more epochs on a.test; the root of the first of them goes missing.
    let mut dave = device(&a, dir.path(), "dave", true).await;
    published_self(&mut dave).await;
    let mut erin = device(&a, dir.path(), "erin", true).await;
    published_self(&mut erin).await;
    assert!(latest_root(&a).await.root.epoch >= audited + 2);
    a.db()
        .await
        .execute(
            "DELETE FROM transparency_roots WHERE epoch = $1",
            &[&i64::try_from(audited + 1).unwrap()],
        )
        .await
        .unwrap();

    // erin's list is proved at an epoch b.test has not audited: it audits, and fails.
    let refused = bob.published_devices(&user(&erin)).await.expect_err("refused");
    assert!(format!("{refused}").contains("failed its audit"), "{refused}");
    let failures = audit_failures(&b).await;
    assert!(failures.iter().any(|f| f.contains("missing")), "{failures:?}");
}

#[tokio::test]
async fn a_server_whose_log_goes_backwards_fails_its_audit() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair_with_admin(a_dir.path(), b_dir.path(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&a, dir.path(), "alice", true).await;
    let mut bob = device(&b, dir.path(), "bob", true).await;
    published_self(&mut alice).await;
    bob.published_devices(&user(&alice)).await.expect("alice's devices");

    // b.test once received an epoch of a.test that a.test no longer proves: its log went
    // back (as after a restored backup, or a rewrite).
    let keyring = ServerKeyring::load(&a.config.federation.as_ref().unwrap().signing_key).expect("a.test's key");
    let mut future = latest_root(&a).await.root;
    future.epoch += 10;
    let epoch = i64::try_from(future.epoch).unwrap();
    let signed = transparency_root::sign(&keyring, future);
    b.db()
        .await
        .execute(
            "INSERT INTO transparency_peer_roots (server, epoch, signed) VALUES ('a.test', $1, $2)",
            &[&epoch, &serde_json::to_value(&signed).unwrap()],
        )
        .await
        .unwrap();
    assert!(
        wait_until(DEADLINE, || async {
            audit_failures(&b).await.iter().any(|f| f.contains("went backwards"))
        })
        .await,
        "a log going backwards was not caught: {:?}",
        audit_failures(&b).await
    );
}

#[tokio::test]
async fn tampered_proofs_badly_signed_and_older_roots_are_refused_by_the_client() {
    let mut s = BehindFakeHub::start().await;
    let bob = s.bob_device().await;
    let bob_id = UserId::parse("bob@b.test").unwrap();
    // A second device, published in epoch 2: the list's proof is of epoch 2.
    let bob2 = parley_tests::mls::TestMlsDevice::new(&bob_id, &DeviceId::parse("B2").unwrap());
    let devices = [
        (DeviceId::parse("B1").unwrap(), bob.signer.public().to_vec()),
        (DeviceId::parse("B2").unwrap(), bob2.signer.public().to_vec()),
    ];
    s.fake.set_devices(&bob_id, &devices, &s.b_key).await;
    let fine = s.alice.published_devices(&bob_id).await.expect("a proved list");
    assert_eq!((fine.devices.len(), fine.since_epoch), (2, Some(2)));

    let refused = |e: MessengerError| match e {
        MessengerError::Directory(e) => e,
        other => panic!("not a directory refusal: {other:?}"),
    };
    let original = s.fake.answer(&bob_id);

    // A proof with one byte changed.
    s.fake.edit_devices(&bob_id, |answer| {
        let lookup = answer.transparency.as_mut().unwrap();
        let at = lookup.proof.0.len() / 2;
        lookup.proof.0[at] ^= 1;
    });
    let e = refused(s.alice.published_devices(&bob_id).await.unwrap_err());
    assert!(matches!(e, DirectoryError::NotTransparent { .. }), "{e:?}");

    // A root whose signature does not verify.
    s.fake.set_answer(&bob_id, original.clone());
    s.fake.edit_devices(&bob_id, |answer| {
        answer.transparency.as_mut().unwrap().root.root.root_hash = vec![2; 32].into();
    });
    let e = refused(s.alice.published_devices(&bob_id).await.unwrap_err());
    assert!(format!("{e}").contains("does not verify"), "{e}");

    // An older epoch, signed an hour before the newest one this device saw: the log
    // went backwards.
    s.fake.set_answer(&bob_id, original.clone());
    s.fake.edit_devices(&bob_id, |answer| {
        let lookup = answer.transparency.as_mut().unwrap();
        let mut root = lookup.root.root.clone();
        root.epoch = 1;
        root.published_at_ms -= 3_600_000;
        lookup.root = transparency_root::sign(&s.b_key, root);
    });
    let e = refused(s.alice.published_devices(&bob_id).await.unwrap_err());
    assert!(format!("{e}").contains("went backwards"), "{e}");

    // The root this device's server audited for the epoch differs.
    s.fake.set_answer(&bob_id, original.clone());
    s.fake.edit_devices(&bob_id, |answer| {
        let lookup = answer.transparency.as_mut().unwrap();
        let mut audited = lookup.root.root.clone();
        audited.root_hash = vec![1; 32].into();
        lookup.witnessed = Some(transparency_root::sign(&s.b_key, audited));
    });
    let e = refused(s.alice.published_devices(&bob_id).await.unwrap_err());
    assert!(matches!(e, DirectoryError::SplitView { epoch: 2, .. }), "{e:?}");

    // And the list as served passes again.
    s.fake.set_answer(&bob_id, original);
    s.alice.published_devices(&bob_id).await.expect("a proved list");
}

#[tokio::test]
async fn after_a_key_rotation_lists_are_proved_at_once_with_the_new_key() {
    let pair = federated_pair().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&pair.a, dir.path(), "alice", true).await;
    published_self(&mut alice).await;
    let epoch = latest_root(&pair.a).await.root.epoch;

    // What `parley-homeserver keys rotate` does; no device changes, so no new epoch.
    let key_file = pair.a.config.federation.as_ref().unwrap().signing_key.clone();
    let mut keyring = ServerKeyring::load(&key_file).unwrap();
    keyring.rotate(time::OffsetDateTime::now_utc().unix_timestamp() * 1000, false);
    keyring.save(&key_file).unwrap();
    let new_key = keyring.key_id().as_str().to_owned();
    let me = user(&alice);
    assert!(
        wait_until(DEADLINE, || async {
            let answer = alice.client().user_devices(&me).await.expect("alice's list");
            answer.server_key.is_some_and(|k| k.key_id == new_key)
        })
        .await,
        "a.test never signed with its new key"
    );

    // Her device accepts the new key; the latest epoch's root, signed by the old key, is
    // served signed by the new one, so the list is proved at once.
    alice.trust_server_key(&me.server_name()).await.unwrap();
    let published = alice.published_devices(&me).await.expect("proved with the new key");
    assert_eq!(published.devices.len(), 1);
    assert_eq!(latest_root(&pair.a).await.root.epoch, epoch, "no new epoch was needed");
    let events = alice.sync().await.expect("sync");
    assert!(
        !events.iter().any(|e| matches!(e, Event::TransparencyFailed { .. })),
        "{events:?}"
    );
}
