//! deploy/backup.sh and deploy/restore.sh on a homeserver with traffic: everything in the
//! backup comes back, and no KeyPackage that may have been handed out after the backup is
//! handed out again (DESIGN.md, Backups).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parley_sdk::Client;
use parley_sdk::messenger::{Event, Messenger};
use parley_specs::keys_api::ClaimKeyPackagesRequest;
use parley_specs::{GroupId, UserId};
use parley_tests::TestServer;
use parley_tests::postgres::fresh_database;

use crate::helpers::{PASSPHRASE, PASSWORD, device, history_texts, login_request, registered};

/// Longest a backup or restore script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

fn deploy_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

/// Runs a deploy/ script with bash (PostgreSQL's client tools from the server's bin
/// directory) and returns its stdout; panics with its output if it fails.
async fn run_script(name: &str, args: &[&str]) -> String {
    let mut command = tokio::process::Command::new("bash");
    command.arg(deploy_script(name)).args(args).kill_on_drop(true);
    if let Some(bin) = parley_homeserver::embedded_pg::find_bin_dir() {
        command.env("PG_BINDIR", bin);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("PARLEY_") {
            command.env_remove(key);
        }
    }
    let output = tokio::time::timeout(SCRIPT_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{name} did not finish within {SCRIPT_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

type InboxRow = (String, i64, i16, String, i64);

/// What a restore must bring back, read from the database.
#[derive(Debug, PartialEq)]
struct Snapshot {
    accounts: Vec<String>,
    devices: Vec<String>,
    /// (group, epoch, last seq)
    groups: Vec<(String, i64, i64)>,
    /// Unacknowledged entries: (device, position, kind, group, seq)
    inbox: Vec<InboxRow>,
}

async fn snapshot(server: &TestServer) -> Snapshot {
    let db = server.db().await;
    let strings = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<String>>();
    let accounts = strings(
        db.query("SELECT localpart FROM accounts ORDER BY 1", &[])
            .await
            .unwrap(),
    );
    let devices = strings(db.query("SELECT device_id FROM devices ORDER BY 1", &[]).await.unwrap());
    let groups = db
        .query("SELECT group_id, epoch, last_seq FROM groups ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let inbox = db
        .query(
            "SELECT device_id, position, kind, group_id, seq FROM inbox ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    Snapshot {
        accounts,
        devices,
        groups,
        inbox,
    }
}

/// A client of `server` acting as the device whose access token `client` holds.
fn same_device_on(server: &TestServer, client: &Client) -> Client {
    server
        .sdk()
        .with_access_token(client.access_token().expect("logged in").to_owned())
}

#[tokio::test]
async fn a_restored_backup_has_every_account_group_and_unread_entry_and_no_one_time_key_package() {
    let keys = tempfile::tempdir().expect("tempdir");
    let stores = tempfile::tempdir().expect("tempdir");
    let backups = tempfile::tempdir().expect("tempdir");
    let server = TestServer::spawn_federating(keys.path()).await;
    let signing_key = keys.path().join("server.key");
    let (tls_cert, tls_key) = (keys.path().join("tls.pem"), keys.path().join("tls.key"));
    let vrf_key = keys.path().join("transparency-vrf.key");
    assert!(signing_key.exists(), "the server created its signing key");
    assert!(vrf_key.exists(), "the server created its key directory's VRF key");

    // Traffic: two groups, four devices of three users (each publishes KeyPackages and a
    // last-resort one), and a user without KeyPackages who will claim others'.
    let mut ann = device(&server, stores.path(), "ann", true).await;
    let mut ann_phone = device(&server, stores.path(), "ann", false).await;
    let mut ben = device(&server, stores.path(), "ben", true).await;
    let cat = device(&server, stores.path(), "cat", true).await;
    let (dan, _) = registered(&server, "dan").await;
    let users: Vec<UserId> = [&ann, &ben, &cat].iter().map(|m| m.user_id().clone()).collect();

    let lunch = ann.create_group().await.expect("create");
    ann.add_members(&lunch, &users)
        .await
        .expect("add ann's phone, ben, cat");
    ben.sync().await.expect("ben joins");
    ann_phone.sync().await.expect("ann's phone joins");
    ann.send_text(&lunch, "pizza?", None).await.expect("send");
    ben.send_text(&lunch, "pasta!", None).await.expect("send");
    // Cat never syncs: the Welcome and both messages wait in cat's inbox, unacknowledged.
    let work = ben.create_group().await.expect("create");
    ben.add_members(&work, &users[..1]).await.expect("add ann's devices");
    ben.send_text(&work, "standup at ten", None).await.expect("send");
    // Ann's phone does not sync again either: the Welcome to `work` and its message wait.

    let before = snapshot(&server).await;
    assert_eq!(before.accounts, ["ann", "ben", "cat", "dan"]);
    assert_eq!(before.groups.len(), 2);
    let cat_device = cat.device_id().to_string();
    let phone_device = ann_phone.device_id().to_string();
    for waiting in [&cat_device, &phone_device] {
        assert!(
            before.inbox.iter().any(|(d, ..)| d == waiting),
            "{waiting} has unacknowledged entries: {:?}",
            before.inbox
        );
    }
    let one_time = "SELECT count(*) FROM key_packages WHERE NOT last_resort";
    assert!(server.count(one_time, &[]).await > 0, "devices published KeyPackages");

    // The backup, while the server runs.
    let out = run_script(
        "backup.sh",
        &[
            "--database-url",
            &server.config.database.url,
            "--output",
            backups.path().to_str().unwrap(),
            "--signing-key",
            signing_key.to_str().unwrap(),
            "--transparency-vrf-key",
            vrf_key.to_str().unwrap(),
            "--tls-cert",
            tls_cert.to_str().unwrap(),
            "--tls-key",
            tls_key.to_str().unwrap(),
        ],
    )
    .await;
    let backup = PathBuf::from(out.lines().last().expect("the backup's path").trim());
    assert!(backup.starts_with(backups.path()), "{backup:?}");
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o700);
    for file in [
        "database.dump",
        "signing.key",
        "transparency-vrf.key",
        "tls.crt",
        "tls.key",
        "MANIFEST",
        "SHA256SUMS",
    ] {
        let mode = std::fs::metadata(backup.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let manifest = std::fs::read_to_string(backup.join("MANIFEST")).unwrap();
    let expected = format!("schema_version={}\n", parley_homeserver::db::expected_schema_version());
    assert!(manifest.contains(&expected), "{manifest}");
    let url: tokio_postgres::Config = server.config.database.url.parse().unwrap();
    if let Some(password) = url.get_password() {
        let password = String::from_utf8_lossy(password);
        assert!(
            !manifest.contains(&*password),
            "the manifest shows no password: {manifest}"
        );
    }

    // After the backup: KeyPackages are handed out (the restore must never hand them out
    // again) and a message is sent (a restore loses it).
    let mut handed_out = BTreeSet::new();
    for user in &users {
        let claimed = dan
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await
            .expect("claim");
        assert!(!claimed.key_packages.is_empty(), "{user}");
        for package in claimed.key_packages {
            assert!(!package.last_resort, "{user} still had one-time KeyPackages");
            handed_out.insert(package.key_package.as_slice().to_vec());
        }
    }
    assert_eq!(handed_out.len(), 4, "one per device of ann (2), ben and cat");
    ann.send_text(&lunch, "after the backup", None).await.expect("send");
    let cat_position = inbox_position(&server, &cat_device).await;
    let config = server.stop().await;

    // The restore, into a new database, with the key files in a new place (the VRF key
    // where the restored server looks by default: beside its signing key).
    let restored_keys = tempfile::tempdir().expect("tempdir");
    let new_signing_key = restored_keys.path().join("server.key");
    let new_vrf_key = restored_keys.path().join("transparency-vrf.key");
    let (new_cert, new_key) = (
        restored_keys.path().join("tls.pem"),
        restored_keys.path().join("tls.key"),
    );
    let database = fresh_database().await;
    let report = run_script(
        "restore.sh",
        &[
            "--database-url",
            &database,
            "--signing-key",
            new_signing_key.to_str().unwrap(),
            "--transparency-vrf-key",
            new_vrf_key.to_str().unwrap(),
            "--tls-cert",
            new_cert.to_str().unwrap(),
            "--tls-key",
            new_key.to_str().unwrap(),
            backup.to_str().unwrap(),
        ],
    )
    .await;
    assert!(report.contains("unclaimed one-time KeyPackages"), "{report}");
    assert_eq!(
        std::fs::read(&new_signing_key).unwrap(),
        std::fs::read(&signing_key).unwrap(),
        "the restored signing key is the original"
    );
    assert_eq!(
        std::fs::read(&new_vrf_key).unwrap(),
        std::fs::read(&vrf_key).unwrap(),
        "the restored VRF key is the original"
    );
    for file in [&new_signing_key, &new_vrf_key, &new_cert, &new_key] {
        let mode = std::fs::metadata(file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file:?}");
    }

    let mut config = config;
    config.database.url = database;
    config.listen.client.set_port(0);
    config.tls.cert = new_cert;
    config.tls.key = new_key;
    let federation = config.federation.as_mut().expect("federating");
    federation.signing_key = new_signing_key;
    federation.listen.set_port(0);
    let restored = TestServer::start(config).await;

    // Exactly what the backup held: the message sent after it is gone.
    assert_eq!(snapshot(&restored).await, before);
    // Entries from now on come after every position handed out before the restore.
    let restored_position = inbox_position(&restored, &cat_device).await;
    assert!(restored_position > cat_position, "{restored_position} > {cat_position}");
    // Not one one-time KeyPackage: the ones handed out after the backup are gone.
    assert_eq!(restored.count(one_time, &[]).await, 0);
    let handed_out_list: Vec<Vec<u8>> = handed_out.iter().cloned().collect();
    assert_eq!(
        restored
            .count(
                "SELECT count(*) FROM key_packages WHERE key_package = ANY($1)",
                &[&handed_out_list]
            )
            .await,
        0
    );

    // Every account logs in; claims hand out last-resort packages only.
    for name in &before.accounts {
        restored
            .sdk()
            .login(&login_request(name, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("{name} logs in after the restore: {e}"));
    }
    let dan = same_device_on(&restored, &dan);
    for user in &users {
        let claimed = dan
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await
            .expect("claim");
        for package in &claimed.key_packages {
            assert!(package.last_resort, "{user}: a one-time KeyPackage was handed out");
            assert!(!handed_out.contains(package.key_package.as_slice()));
        }
    }
    let ann_client = same_device_on(&restored, ann.client());
    for (group, epoch, last_seq) in &before.groups {
        let group: GroupId = group.parse().expect("group id");
        let summary = ann_client.get_group(&group).await.expect("the group");
        assert_eq!(
            (i64::try_from(summary.epoch).unwrap(), summary.last_seq),
            (*epoch, *last_seq)
        );
    }

    // Every unacknowledged entry is readable by its device: cat's and ann's phone's, as
    // their messengers (same stores, same tokens) process them now.
    let cat_store = cat.store_path().to_owned();
    let phone_store = ann_phone.store_path().to_owned();
    let (cat_user, phone_user) = (cat.user_id().clone(), ann_phone.user_id().clone());
    let (cat_id, phone_id) = (cat.device_id().clone(), ann_phone.device_id().clone());
    let (cat_client, phone_client) = (
        same_device_on(&restored, cat.client()),
        same_device_on(&restored, ann_phone.client()),
    );
    drop((ann, ben, cat, ann_phone));
    for (device_id, client) in [(&cat_device, &cat_client), (&phone_device, &phone_client)] {
        let page = client
            .read_inbox(&parley_specs::groups_api::InboxQuery {
                after: Some(0),
                limit: Some(100),
                timeout_ms: None,
            })
            .await
            .expect("read the inbox");
        let read: Vec<(i64, String, i64)> = page
            .entries
            .iter()
            .map(|e| (e.cursor, e.group_id.to_string(), e.seq))
            .collect();
        let expected: Vec<(i64, String, i64)> = before
            .inbox
            .iter()
            .filter(|(d, ..)| d == device_id)
            .map(|(_, position, _, group, seq)| (*position, group.clone(), *seq))
            .collect();
        assert_eq!(read, expected, "{device_id}");
    }
    let mut cat = Messenger::open(cat_client, cat_user, cat_id, cat_store, PASSPHRASE)
        .await
        .expect("cat's store");
    let events = cat.sync().await.expect("cat syncs");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Joined { group_id, .. } if *group_id == lunch)),
        "{events:?}"
    );
    assert_eq!(history_texts(&mut cat, &lunch).await, ["pizza?", "pasta!"]);
    let mut phone = Messenger::open(phone_client, phone_user, phone_id, phone_store, PASSPHRASE)
        .await
        .expect("the phone's store");
    phone.sync().await.expect("the phone syncs");
    assert_eq!(history_texts(&mut phone, &work).await, ["standup at ten"]);
    // And the group goes on: what the phone sends now reaches cat.
    phone
        .send_text(&lunch, "back after the restore", None)
        .await
        .expect("send after the restore");
    cat.sync().await.expect("cat syncs");
    let last = cat
        .history(&lunch, None)
        .await
        .expect("history")
        .pop()
        .expect("a message");
    assert_eq!(last.text, "back after the restore");
    // Having connected, both topped their KeyPackages up again.
    for messenger in [&cat, &phone] {
        let count = messenger.client().key_package_count().await.expect("count");
        assert!(count.available > 0 && count.last_resort, "{count:?}");
    }
}

/// The position the next inbox entry of `device` will follow.
async fn inbox_position(server: &TestServer, device: &str) -> i64 {
    server
        .db()
        .await
        .query_one("SELECT inbox_position FROM devices WHERE device_id = $1", &[&device])
        .await
        .unwrap()
        .get(0)
}
