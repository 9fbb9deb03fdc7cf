//! The key backup (issue 14): an end-to-end encrypted backup of a person's history on
//! their homeserver, restored on a new device after losing the old one. The whole story
//! through the real CLI on two federating homeserver processes, and what a restore must
//! refuse: a wrong key, a chunk the server altered, another account's backup; an
//! interrupted restore continues; an older backup never takes back newer history. Plus
//! the chunk store's own rules (versions, quota, sizes).

use std::ops::ControlFlow;
use std::path::Path;

use parley_sdk::backup::{BackupError, BackupSecret, RecoveryKey};
use parley_sdk::messenger::{Messenger, MessengerError};
use parley_specs::{ErrorCode, GroupId};
use parley_tests::TestServer;
use parley_tests::process::ProcessServer;

use crate::helpers::{
    CliUser, a_and_b_configs, code, device, files_containing, history_texts, joined, pg_dump, registered, text_contains,
};

/// Someone else on `server`, to look at what it relays.
async fn parley_sdk_observer(server: &ProcessServer) -> (parley_sdk::Client, parley_specs::client_api::LoginResponse) {
    let mut client = server.sdk();
    let session = client
        .register(&crate::helpers::register_request("observer"))
        .await
        .expect("register");
    client.set_session(&session);
    (client, session)
}

fn backup_error(err: MessengerError) -> BackupError {
    match err {
        MessengerError::Backup(e) => e,
        other => panic!("expected a backup error, got {other}"),
    }
}

/// Alice (first device) and bob in one conversation on `server`, with `n` messages
/// from alice; returns both messengers and the group.
async fn conversation(server: &TestServer, dir: &Path, n: usize) -> (Messenger, Messenger, GroupId) {
    let mut alice = device(server, dir, "alice", true).await;
    let mut bob = device(server, dir, "bob", true).await;
    let group = alice.create_group().await.expect("create");
    alice
        .add_members(&group, &[bob.user_id().clone()])
        .await
        .expect("add bob");
    joined(&mut bob, &group).await;
    for i in 0..n {
        alice
            .send_text(&group, &format!("message {i} before the backup"), None)
            .await
            .expect("send");
    }
    (alice, bob, group)
}

/// Receives until `m`'s copy of `group` has device `device` in it.
async fn sees_device(m: &mut Messenger, group: &GroupId, device: &parley_specs::DeviceId) {
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    loop {
        let groups = m.groups().await.expect("groups");
        if groups
            .iter()
            .any(|g| &g.group_id == group && g.members.iter().any(|d| &d.device_id == device))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never saw {device}",
            m.user_id()
        );
        m.receive(std::time::Duration::from_millis(500)).await.expect("receive");
    }
}

fn recovery_key() -> (BackupSecret, String) {
    let key = RecoveryKey::generate();
    let shown = key.display();
    (BackupSecret::RecoveryKey(key), shown)
}

/// The story of issue 14 through the real CLI: alice (a.test) and bob (b.test) talk;
/// alice turns on a second factor and the backup; her only device is lost (its profile
/// deleted); she logs in on a new device with her password, a TOTP code and her recovery
/// key, sees every earlier message, deletes the lost device, and keeps talking; bob sees
/// her device change. Afterwards neither server's database dump, files nor logs hold a
/// message text, the recovery key or the TOTP secret.
#[tokio::test]
async fn a_lost_phone_comes_back_with_its_history_through_the_cli() {
    let (a_dir, b_dir, cli_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a_config, b_config) = a_and_b_configs(a_dir.path(), b_dir.path()).await;
    let a = ProcessServer::start_logged(a_config, a_dir.path()).await;
    let b = ProcessServer::start_logged(b_config, b_dir.path()).await;
    let alice = CliUser::new(cli_dir.path(), "alice", &a.url);
    let bob = CliUser::new(cli_dir.path(), "bob", &b.url);
    alice.register().await;
    bob.register().await;

    let group = alice.json(&["group", "create"]).await["group_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.ok(&["group", "add", &group, "bob@b.test"]).await;
    let before = [
        "Brunch plan: the bakery on Rue Oberkampf at eleven",
        "The spare key is under the blue flowerpot",
    ];
    alice.ok(&["send", &group, before[0]]).await;
    let bob_text = "Bring the travel documents, the gate code is 4471";
    // Bob's server follows the group; his first sync joins it.
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    while !bob.ok(&["group", "list"]).await.contains(&group) {
        assert!(tokio::time::Instant::now() < deadline, "bob never joined");
        bob.ok(&["sync"]).await;
    }
    bob.ok(&["send", &group, bob_text]).await;

    // Alice protects her account with a second factor...
    let totp_secret = alice.enable_second_factor().await;
    // ... and turns the backup on: a recovery key, shown once.
    let enabled = alice.json(&["backup", "enable"]).await;
    let key = enabled["recovery_key"].as_str().expect("recovery key").to_owned();
    assert_eq!(key.len(), 59, "48 characters in groups of four: {key}");
    // Later messages are backed up after each send and sync.
    alice.ok(&["send", &group, before[1]]).await;
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    while !alice.ok(&["history", &group]).await.contains(bob_text) {
        assert!(tokio::time::Instant::now() < deadline, "alice never got bob's message");
        alice.ok(&["sync"]).await;
    }
    let status = alice.ok(&["backup", "status"]).await;
    assert!(status.contains("enabled on this device"), "{status}");
    assert!(!status.contains("changes since"), "everything is backed up: {status}");
    let old_device = alice.json(&["whoami"]).await["device_id"].as_str().unwrap().to_owned();

    // The phone is lost.
    alice.lose_device();
    assert!(!alice.home.exists());

    // A new device: password and a code (the login refuses to go without one), then the
    // recovery key.
    let password = alice.secret_file("password-again", crate::helpers::PASSWORD);
    let without_code = alice
        .run(&[
            "--server",
            &a.url,
            "--ca-file",
            parley_tests::server::ca_file().to_str().unwrap(),
            "login",
            "alice",
            "--password-file",
            password.to_str().unwrap(),
        ])
        .await;
    assert!(
        !without_code.ok && without_code.stderr.contains("second factor"),
        "no login without the code: {without_code:?}"
    );
    // Whatever that attempt left on the new device goes.
    let _ = std::fs::remove_dir_all(&alice.home);
    alice.login().await;
    let new_device = alice.json(&["whoami"]).await["device_id"].as_str().unwrap().to_owned();
    let key_file = alice.secret_file("recovery-key", &key);
    let restored = alice
        .run(&["restore", "--recovery-key-file", key_file.to_str().unwrap()])
        .await;
    assert!(restored.ok, "{restored:?}");
    assert!(restored.stderr.contains("Restoring:"), "progress: {restored:?}");
    let history = alice.ok(&["history", &group]).await;
    for text in before.iter().chain([&bob_text]) {
        assert!(history.contains(text), "the new device shows {text:?}:\n{history}");
    }
    // The lost device is revoked, and with it its leaves.
    alice.ok(&["devices", "delete", &old_device]).await;
    let devices = alice.ok(&["devices", "list"]).await;
    assert!(!devices.contains(&old_device), "{devices}");

    // Bob's server relays alice's device list to his client from a cache of up to 10 s:
    // wait until it lists her new device before bob looks at her join.
    let (observer, _) = parley_sdk_observer(&b).await;
    let alice_id: parley_specs::UserId = "alice@a.test".parse().unwrap();
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    while !observer
        .user_devices(&alice_id)
        .await
        .is_ok_and(|d| d.device_keys.devices.iter().any(|k| k.device_id.as_str() == new_device))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "b.test never listed alice's new device"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // And the conversation goes on.
    let after = "Back on a new phone, same conversation";
    alice.ok(&["send", &group, after]).await;
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    let mut seen = String::new();
    loop {
        seen.push_str(&bob.ok(&["sync"]).await);
        if bob.ok(&["history", &group]).await.contains(after) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never got {after:?}: {seen}"
        );
    }
    assert!(
        seen.contains("alice@a.test added a device"),
        "bob sees alice's device change: {seen}"
    );
    let reply = "Welcome back";
    bob.ok(&["send", &group, reply]).await;
    let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
    while !alice.ok(&["history", &group]).await.contains(reply) {
        assert!(tokio::time::Instant::now() < deadline, "alice never got the reply");
        alice.ok(&["sync"]).await;
    }

    // Nothing readable on either server: database dumps, files, logs.
    let compact_key = key.replace('-', "");
    let mut needles: Vec<&str> = before.to_vec();
    needles.extend([
        bob_text,
        after,
        reply,
        key.as_str(),
        compact_key.as_str(),
        totp_secret.as_str(),
    ]);
    for (server, dir) in [(&a, a_dir.path()), (&b, b_dir.path())] {
        let dump = pg_dump(&server.config.database.url).await;
        assert!(dump.contains("key_backup_chunks"), "the dump has the backup table");
        for needle in &needles {
            assert!(
                !text_contains(&dump, needle),
                "{}'s database dump holds {needle:?}",
                server.config.server_name
            );
        }
        let log = std::fs::read_to_string(server.log_file().expect("logged")).unwrap_or_default();
        assert!(!log.is_empty(), "the server logged");
        let found = files_containing(dir, &needles);
        assert!(
            found.is_empty(),
            "files of {} hold: {found:?}",
            server.config.server_name
        );
    }
    // Alice's backup is on her server only.
    let a_chunks = a.count("SELECT count(*) FROM key_backup_chunks", &[]).await;
    assert!(a_chunks >= 4, "keys, manifest, state, history: {a_chunks}");
    assert_eq!(b.count("SELECT count(*) FROM key_backup_chunks", &[]).await, 0);
}

/// A wrong recovery key (or passphrase) is refused before anything is read or changed.
#[tokio::test]
async fn a_wrong_recovery_key_is_refused_and_changes_nothing() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, _bob, group) = conversation(&server, dir.path(), 3).await;
    let (secret, _) = recovery_key();
    alice.enable_backup(&secret).await.expect("enable");
    alice.backup_now().await.expect("backup");

    let mut phone = device(&server, dir.path(), "alice", false).await;
    let before = phone.groups().await.unwrap().len();
    let (wrong, _) = recovery_key();
    let err = backup_error(
        phone
            .restore_backup(&wrong, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, BackupError::WrongKey(_)), "{err}");
    assert!(err.to_string().contains("wrong recovery key"), "{err}");
    let err = backup_error(
        phone
            .restore_backup(
                &BackupSecret::Passphrase("a passphrase, but not the key".into()),
                |_| ControlFlow::Continue(()),
            )
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, BackupError::WrongKey(_)), "{err}");
    assert_eq!(phone.groups().await.unwrap().len(), before, "nothing was changed");
    assert!(
        !phone.backup_status().await.unwrap().enabled,
        "the wrong key did not turn backup on"
    );
    // Enabling with a wrong key does not take over the account's backup either.
    let err = backup_error(phone.enable_backup(&wrong).await.unwrap_err());
    assert!(matches!(err, BackupError::Exists), "{err}");

    // The right one works.
    let report = phone
        .restore_backup(&secret, |_| ControlFlow::Continue(()))
        .await
        .expect("restore");
    assert!(report.complete);
    assert!(history_texts(&mut phone, &group).await.len() >= 3);
}

/// A chunk the server changed (or served at another version) is refused, by name, and
/// nothing of it is merged.
#[tokio::test]
async fn a_chunk_altered_on_the_server_is_refused_by_name() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, _bob, group) = conversation(&server, dir.path(), 3).await;
    let (secret, _) = recovery_key();
    alice.enable_backup(&secret).await.expect("enable");
    alice.backup_now().await.expect("backup");

    let db = server.db().await;
    let altered: String = db
        .query_one(
            "UPDATE key_backup_chunks SET data = set_byte(data, 40, (get_byte(data, 40) + 1) % 256)
             WHERE chunk_id = (SELECT min(chunk_id) FROM key_backup_chunks WHERE chunk_id LIKE 'h-%')
             RETURNING chunk_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut phone = device(&server, dir.path(), "alice", false).await;
    let err = backup_error(
        phone
            .restore_backup(&secret, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    match &err {
        BackupError::Altered { chunk_id, .. } => assert_eq!(chunk_id, &altered),
        other => panic!("expected an altered chunk, got {other}"),
    }
    assert!(err.to_string().contains(&altered), "{err}");
    assert!(
        history_texts(&mut phone, &group).await.is_empty(),
        "nothing of the altered chunk was restored"
    );

    // The bytes put back, but at another version than the manifest's (a rollback or a
    // replay looks like this): refused too.
    db.execute(
        "UPDATE key_backup_chunks SET data = set_byte(data, 40, (get_byte(data, 40) + 255) % 256),
         version = version + 1 WHERE chunk_id = $1",
        &[&altered],
    )
    .await
    .unwrap();
    let err = backup_error(
        phone
            .restore_backup(&secret, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, BackupError::Altered { chunk_id, reason } if chunk_id == &altered && reason.contains("version")),
        "{err}"
    );

    // So is a manifest the server edited.
    db.execute(
        "UPDATE key_backup_chunks SET data = set_byte(data, 30, (get_byte(data, 30) + 1) % 256)
         WHERE chunk_id = 'manifest'",
        &[],
    )
    .await
    .unwrap();
    let err = backup_error(
        phone
            .restore_backup(&secret, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, BackupError::Altered { chunk_id, .. } if chunk_id == "manifest"),
        "{err}"
    );
}

/// Another account's backup, served as this account's (by a server that swapped them),
/// is refused even with the key that made it.
#[tokio::test]
async fn another_accounts_backup_is_refused() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (_alice, mut bob, _group) = conversation(&server, dir.path(), 2).await;
    let (bobs_key, _) = recovery_key();
    bob.enable_backup(&bobs_key).await.expect("enable");
    bob.backup_now().await.expect("backup");

    let mut phone = device(&server, dir.path(), "alice", false).await;
    let db = server.db().await;
    db.execute(
        "INSERT INTO key_backup_chunks (localpart, chunk_id, version, data, size)
         SELECT 'alice', chunk_id, version, data, size FROM key_backup_chunks WHERE localpart = 'bob'",
        &[],
    )
    .await
    .unwrap();
    let err = backup_error(
        phone
            .restore_backup(&bobs_key, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, BackupError::OtherAccount { .. }), "{err}");
    assert!(err.to_string().contains("belongs to bob@"), "{err}");

    // Even with the keys chunk's account rewritten to alice's, nothing opens.
    db.execute(
        "UPDATE key_backup_chunks SET data = convert_to(replace(convert_from(data, 'UTF8'), 'bob@', 'alice@'), 'UTF8')
         WHERE localpart = 'alice' AND chunk_id = 'keys'",
        &[],
    )
    .await
    .unwrap();
    let err = backup_error(
        phone
            .restore_backup(&bobs_key, |_| ControlFlow::Continue(()))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, BackupError::WrongKey(_)), "{err}");
    for group in phone.groups().await.unwrap() {
        assert!(
            history_texts(&mut phone, &group.group_id).await.is_empty(),
            "nothing was restored"
        );
    }
}

/// A restore stopped halfway (as an interruption would) continues where it stopped.
#[tokio::test]
async fn an_interrupted_restore_resumes() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    // 300 messages: three history chunks of 128 sequence numbers, plus the state chunk.
    let (mut alice, _bob, group) = conversation(&server, dir.path(), 300).await;
    let (secret, _) = recovery_key();
    alice.enable_backup(&secret).await.expect("enable");
    alice.backup_now().await.expect("backup");

    let mut phone = device(&server, dir.path(), "alice", false).await;
    let first = phone
        .restore_backup(&secret, |p| {
            if p.done >= 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
        .expect("partial restore");
    assert!(!first.complete, "{first:?}");
    assert_eq!(first.progress.done, 2);
    assert!(first.progress.total >= 4, "{first:?}");
    let partial = history_texts(&mut phone, &group).await.len();
    assert!(partial > 0 && partial < 300, "part of the history: {partial}");

    // The device goes away and comes back (a new process opens the store).
    let (client, user, device_id, path) = (
        phone.client().clone(),
        phone.user_id().clone(),
        phone.device_id().clone(),
        phone.store_path().to_owned(),
    );
    drop(phone);
    let mut phone = Messenger::open(client, user, device_id, path, crate::helpers::PASSPHRASE)
        .await
        .expect("reopen");
    let second = phone
        .restore_backup(&secret, |_| ControlFlow::Continue(()))
        .await
        .expect("resumed restore");
    assert!(second.complete, "{second:?}");
    assert_eq!(
        second.progress.resumed, 2,
        "the chunks done before were not fetched again"
    );
    assert_eq!(second.progress.done, second.progress.total);
    let texts = history_texts(&mut phone, &group).await;
    assert_eq!(texts.iter().filter(|t| t.ends_with("before the backup")).count(), 300);
}

/// An older backup never takes back newer local history: messages the device has stay
/// as they are; only missing ones are added. And sending does not upload anything: the
/// backup runs after the send, when asked.
#[tokio::test]
async fn an_older_backup_does_not_overwrite_newer_history() {
    let server = TestServer::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut alice, mut bob, group) = conversation(&server, dir.path(), 3).await;
    let (secret, _) = recovery_key();
    alice.enable_backup(&secret).await.expect("enable");
    alice.backup_now().await.expect("backup");
    let versions = |list: parley_specs::key_backup_api::ChunkList| {
        list.chunks
            .into_iter()
            .map(|c| (c.chunk_id, c.version))
            .collect::<Vec<_>>()
    };
    let stored = versions(alice.client().list_backup_chunks().await.unwrap());

    // A second device of alice's, in the conversation, with newer messages.
    let mut phone = device(&server, dir.path(), "alice", false).await;
    phone.join_own_conversations().await.expect("join");
    // Alice's first device and bob take in the phone's join before sending.
    for m in [&mut alice, &mut bob] {
        sees_device(m, &group, phone.device_id()).await;
    }
    alice
        .send_text(&group, "newer than the backup", None)
        .await
        .expect("send");
    assert_eq!(
        versions(alice.client().list_backup_chunks().await.unwrap()),
        stored,
        "a send uploads nothing"
    );
    bob.send_text(&group, "also newer", None).await.expect("send");
    crate::helpers::sync_until(&mut phone, &group, "the newer messages", |h| {
        h.iter().any(|m| m.text == "also newer") && h.iter().any(|m| m.text == "newer than the backup")
    })
    .await;
    let before = phone.history(&group, None).await.unwrap();

    // Restoring the older backup adds the messages from before the phone joined, and
    // changes none of the ones it had.
    let report = phone
        .restore_backup(&secret, |_| ControlFlow::Continue(()))
        .await
        .expect("restore");
    assert!(report.complete);
    let after = phone.history(&group, None).await.unwrap();
    for message in &before {
        assert!(after.contains(message), "kept as it was: {message:?}");
    }
    assert_eq!(after.len(), before.len() + 3, "the three older messages added");
    // Restoring again adds nothing.
    let again = phone
        .restore_backup(&secret, |_| ControlFlow::Continue(()))
        .await
        .expect("restore again");
    assert_eq!(again.messages_added, 0);
    assert_eq!(phone.history(&group, None).await.unwrap(), after);

    // The phone now writes the same backup; the first device merges it, and a restore
    // on a third device sees everything.
    phone.backup_now().await.expect("phone backs up");
    let report = alice.backup_now().await.expect("alice backs up");
    assert!(report.merged_chunks > 0, "{report:?}");
    let mut third = device(&server, dir.path(), "alice", false).await;
    third
        .restore_backup(&secret, |_| ControlFlow::Continue(()))
        .await
        .expect("restore");
    let texts = history_texts(&mut third, &group).await;
    for text in ["newer than the backup", "also newer", "message 0 before the backup"] {
        assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
    }
}

/// The chunk store: versions (optimistic concurrency), sizes, quota, ids, one account's
/// chunks only.
#[tokio::test]
async fn the_chunk_store_checks_versions_sizes_and_quota() {
    let server = TestServer::spawn_with(|c| {
        c.key_backup.quota_bytes = 9_000;
        c.key_backup.max_chunk_bytes = 6_000;
    })
    .await;
    let (alice, _) = registered(&server, "alice").await;
    let (bob, _) = registered(&server, "bob").await;

    let put = alice.put_backup_chunk("c1", 0, vec![1; 5_000]).await.expect("put");
    assert_eq!(put.chunk.version, 1);
    assert_eq!(put.used_bytes, 5_000);
    assert_eq!(
        code(alice.put_backup_chunk("c1", 0, vec![2; 10]).await),
        ErrorCode::BackupVersionConflict
    );
    assert_eq!(
        code(alice.put_backup_chunk("c1", 2, vec![2; 10]).await),
        ErrorCode::BackupVersionConflict
    );
    let put = alice.put_backup_chunk("c1", 1, vec![2; 4_000]).await.expect("replace");
    assert_eq!((put.chunk.version, put.used_bytes), (2, 4_000));
    assert_eq!(
        code(alice.put_backup_chunk("c2", 0, vec![3; 6_001]).await),
        ErrorCode::PayloadTooLarge
    );
    assert_eq!(
        code(alice.put_backup_chunk("c2", 0, vec![3; 6_000]).await),
        ErrorCode::QuotaExceeded
    );
    alice
        .put_backup_chunk("c2", 0, vec![3; 5_000])
        .await
        .expect("within quota");
    for bad in ["", "UPPER", "a%2Fb", &"x".repeat(65)] {
        assert_eq!(
            code(alice.put_backup_chunk(bad, 0, vec![1]).await),
            if bad.is_empty() {
                ErrorCode::UnrecognizedEndpoint
            } else {
                ErrorCode::InvalidParam
            },
            "{bad:?}"
        );
    }
    let (version, data) = alice.get_backup_chunk("c1").await.expect("get");
    assert_eq!((version, data), (2, vec![2; 4_000]));
    // Bob sees none of it.
    assert_eq!(code(bob.get_backup_chunk("c1").await), ErrorCode::NotFound);
    assert!(bob.list_backup_chunks().await.unwrap().chunks.is_empty());
    let list = alice.list_backup_chunks().await.unwrap();
    assert_eq!(list.chunks.len(), 2);
    assert_eq!(
        (list.used_bytes, list.quota_bytes, list.max_chunk_bytes),
        (9_000, 9_000, 6_000)
    );
    alice.delete_backup().await.expect("delete");
    let list = alice.list_backup_chunks().await.unwrap();
    assert_eq!((list.chunks.len(), list.used_bytes), (0, 0));
    alice
        .put_backup_chunk("c1", 0, vec![1; 6_000])
        .await
        .expect("quota freed");

    let off = TestServer::spawn_with(|c| c.key_backup.enabled = false).await;
    let (carol, _) = registered(&off, "carol").await;
    assert_eq!(code(carol.list_backup_chunks().await), ErrorCode::NotFound);
}
