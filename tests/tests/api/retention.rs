//! Retention: each rule deletes what it should and nothing else. The servers run with the
//! background sweeper off; a test ages rows in the database and runs one sweep pass
//! itself (`retention::sweep_once`), so nothing depends on timing.

use parley_homeserver::config::RetentionConfig;
use parley_homeserver::metrics::Metrics;
use parley_homeserver::retention::{Swept, sweep_once};
use parley_homeserver::store::retention::SWEEP_LOCK_KEY;
use parley_sdk::messenger::{Event, Messenger};
use parley_specs::GroupId;
use parley_specs::endpoints::admin::STORAGE;
use parley_tests::TestServer;
use parley_tests::admin::{AdminApi, enable_admin};

use crate::helpers::{device, history_texts, registered, upload_key_packages, user};

const DAY: u64 = 24 * 3600;

/// The defaults, without the background sweeper (the test sweeps).
fn rules() -> RetentionConfig {
    RetentionConfig {
        enabled: false,
        batch_size: 2, // several batches even for a handful of rows
        batch_pause_ms: 0,
        ..RetentionConfig::default()
    }
}

async fn sweep(server: &TestServer, rules: &RetentionConfig) -> Swept {
    let pool = parley_homeserver::db::create_pool(&server.config.database).expect("pool");
    let metrics = Metrics::new().expect("metrics");
    let swept = sweep_once(&pool, rules, &metrics)
        .await
        .expect("sweep")
        .expect("nobody else holds the sweeper's lock");
    let text = metrics.render().expect("metrics");
    if swept.messages > 0 {
        assert!(
            text.contains("parley_retention_swept_rows_total{rule=\"delivered_or_max_age\",table=\"group_messages\"}"),
            "{text}"
        );
    }
    swept
}

async fn count(server: &TestServer, sql: &str, device: &str) -> i64 {
    server.count(sql, &[&device]).await
}

async fn inbox_of(server: &TestServer, m: &Messenger) -> i64 {
    count(
        server,
        "SELECT count(*) FROM inbox WHERE device_id = $1",
        m.device_id().as_str(),
    )
    .await
}

async fn messages_of(server: &TestServer, group: &GroupId) -> i64 {
    server
        .count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1",
            &[&group.as_str()],
        )
        .await
}

/// Makes every stored message of the group look `secs` old.
async fn age_messages(server: &TestServer, group: &GroupId, secs: u64) {
    server
        .db()
        .await
        .execute(
            "UPDATE group_messages SET created_at = now() - $2 * interval '1 second' WHERE group_id = $1",
            &[&group.as_str(), &(secs as f64)],
        )
        .await
        .expect("age messages");
}

fn missed(events: &[Event]) -> Vec<i64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MissedMessages { count } => Some(*count),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn idle_devices_lose_their_inbox_and_are_told_while_messages_go_once_nobody_needs_them() {
    let server = TestServer::spawn_with(|c| c.retention.enabled = false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "rann", true).await;
    let mut ben = device(&server, dir.path(), "rben", true).await;
    let mut cat = device(&server, dir.path(), "rcat", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben), user(&cat)]).await.expect("add");
    ben.sync().await.expect("ben joins");
    cat.sync().await.expect("cat joins");
    for i in 0..3 {
        ann.send_text(&group, &format!("message {i}"), None)
            .await
            .expect("send");
    }
    let (ben_entries, cat_entries) = (inbox_of(&server, &ben).await, inbox_of(&server, &cat).await);
    assert!(ben_entries >= 3 && cat_entries >= 3, "{ben_entries} {cat_entries}");

    // Ben was last seen two days ago: his entries go, cat's (seen now) stay, and nothing
    // else is touched (the messages are fresh).
    server
        .db()
        .await
        .execute(
            "UPDATE devices SET last_seen_at = now() - interval '2 days' WHERE device_id = $1",
            &[&ben.device_id().as_str()],
        )
        .await
        .expect("make ben idle");
    let rules = RetentionConfig {
        device_idle_max_age_secs: DAY,
        ..rules()
    };
    let swept = sweep(&server, &rules).await;
    assert_eq!(swept.idle_inbox_entries, ben_entries as u64, "{swept:?}");
    assert_eq!(swept.messages, 0, "{swept:?}");
    assert_eq!(inbox_of(&server, &ben).await, 0);
    assert_eq!(inbox_of(&server, &cat).await, cat_entries);
    let stored = messages_of(&server, &group).await;
    assert!(stored >= 4, "the commit and 3 messages: {stored}");

    // Ben returns and is told; cat reads everything.
    let events = ben.sync().await.expect("ben syncs");
    assert_eq!(missed(&events), [ben_entries], "{events:?}");
    let mark = count(
        &server,
        "SELECT count(*) FROM devices WHERE device_id = $1 AND inbox_dropped_through IS NOT NULL",
        ben.device_id().as_str(),
    )
    .await;
    assert_eq!(mark, 0, "acknowledging past the dropped entries clears the mark");
    assert!(missed(&ben.sync().await.expect("again")).is_empty(), "told once");
    cat.sync().await.expect("cat reads");
    assert_eq!(history_texts(&mut cat, &group).await.len(), 3);
    assert_eq!(inbox_of(&server, &cat).await, 0);

    // Every device has the messages, but they are younger than the minimum age: kept.
    let swept = sweep(&server, &rules).await;
    assert_eq!(swept.messages, 0, "{swept:?}");
    // Two hours old: past the minimum age, but ann never read cat's delivery receipts,
    // which still point at the messages: kept.
    age_messages(&server, &group, 2 * 3600).await;
    let receipts = count(
        &server,
        "SELECT count(*) FROM inbox WHERE device_id = $1 AND kind = 3",
        ann.device_id().as_str(),
    )
    .await;
    assert!(receipts >= 3, "cat's receipts wait in ann's inbox: {receipts}");
    let swept = sweep(&server, &rules).await;
    assert_eq!(swept.receipts, 0, "{swept:?}");
    let left = messages_of(&server, &group).await;
    assert!(left >= 3, "messages with receipts waiting are kept: {left}");
    assert!(left < stored, "the commit nobody needs went: {left} of {stored}");
    // Eight days old: past the receipt age, the receipts go and so do the messages.
    age_messages(&server, &group, 8 * DAY).await;
    let swept = sweep(&server, &rules).await;
    assert_eq!(swept.receipts, receipts as u64, "{swept:?}");
    assert_eq!(messages_of(&server, &group).await, 0, "{swept:?}");
    assert_eq!(inbox_of(&server, &ann).await, 0);

    // Ann is not told she missed anything: receipts are not messages.
    assert!(missed(&ann.sync().await.expect("ann syncs")).is_empty());
}

#[tokio::test]
async fn a_message_not_yet_acknowledged_by_a_member_server_is_kept_until_the_maximum_age() {
    let server = TestServer::spawn_with(|c| c.retention.enabled = false).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann = device(&server, dir.path(), "qann", true).await;
    let mut ben = device(&server, dir.path(), "qben", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add");
    ben.sync().await.expect("ben joins");
    let waiting = ann
        .send_text(&group, "for the other server", None)
        .await
        .expect("send")
        .seq;
    let read = ann.send_text(&group, "read by ben", None).await.expect("send").seq;
    // A member server that has not acknowledged `waiting` yet (its queue row stays until
    // it does); ben reads both.
    let db = server.db().await;
    db.batch_execute("INSERT INTO federation_destinations (destination) VALUES ('down.example')")
        .await
        .expect("destination");
    db.execute(
        "INSERT INTO federation_queue (destination, group_id, seq) VALUES ('down.example', $1, $2)",
        &[&group.as_str(), &waiting],
    )
    .await
    .expect("queue");
    ben.sync().await.expect("ben reads");
    assert_eq!(inbox_of(&server, &ben).await, 0);
    // Nobody reads receipts here: they would hold the messages until the receipt age.
    db.execute("DELETE FROM inbox WHERE device_id = $1", &[&ann.device_id().as_str()])
        .await
        .expect("ann's receipts");

    age_messages(&server, &group, 2 * 3600).await;
    let rules = RetentionConfig {
        message_max_age_secs: DAY,
        ..rules()
    };
    sweep(&server, &rules).await;
    let seqs = server.stored_seqs(&group).await;
    assert_eq!(
        seqs,
        [waiting],
        "only the message the other server still needs is kept (read: {read})"
    );

    // A message the device has not read yet is kept too; past the maximum age both go,
    // the queued send with it, and the device is told.
    let unread = ann
        .send_text(&group, "ben has not read this", None)
        .await
        .expect("send")
        .seq;
    age_messages(&server, &group, 2 * DAY).await;
    let swept = sweep(&server, &rules).await;
    assert_eq!(swept.queued_sends, 1, "{swept:?}");
    assert_eq!(swept.expired_inbox_entries, 1, "{swept:?} (seq {unread})");
    assert_eq!(messages_of(&server, &group).await, 0);
    assert_eq!(server.count("SELECT count(*) FROM federation_queue", &[]).await, 0);
    let events = ben.sync().await.expect("ben syncs");
    assert_eq!(missed(&events), [1], "{events:?}");
}

#[tokio::test]
async fn expired_key_packages_old_claims_and_replay_records_are_swept_fresh_ones_kept() {
    let server = TestServer::spawn_with(|c| c.retention.enabled = false).await;
    let (client, session) = registered(&server, "kpsweep").await;
    upload_key_packages(&client, &session, 4).await;
    let device = session.device_id.as_str();
    let db = server.db().await;
    // Two of the one-time packages expired; an old and a fresh claim record; an old and a
    // fresh replay record.
    db.execute(
        "UPDATE key_packages SET expires_at = now() - interval '1 day'
         WHERE id IN (SELECT id FROM key_packages WHERE device_id = $1 AND NOT last_resort ORDER BY id LIMIT 2)",
        &[&device],
    )
    .await
    .expect("expire");
    db.execute(
        "INSERT INTO key_package_claims (device_id, claimer, one_time, claimed_at)
         VALUES ($1, 'old@x', true, now() - interval '2 hours'), ($1, 'new@x', true, now())",
        &[&device],
    )
    .await
    .expect("claims");
    db.batch_execute(
        "INSERT INTO federation_seen_requests (replay_key, seen_at)
         VALUES ('old', now() - interval '1 day'), ('new', now())",
    )
    .await
    .expect("replay records");
    let before = count(
        &server,
        "SELECT count(*) FROM key_packages WHERE device_id = $1",
        device,
    )
    .await;

    let swept = sweep(&server, &rules()).await;
    assert_eq!(
        (swept.key_packages, swept.key_package_claims, swept.replay_records),
        (2, 1, 1),
        "{swept:?}"
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM key_packages WHERE device_id = $1",
            device
        )
        .await,
        before - 2
    );
    assert_eq!(
        count(
            &server,
            "SELECT count(*) FROM key_packages WHERE device_id = $1 AND expires_at < now()",
            device
        )
        .await,
        0
    );
    let claims: Vec<String> = db
        .query("SELECT claimer FROM key_package_claims", &[])
        .await
        .expect("claims")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(claims, ["new@x"]);
    let replays: Vec<String> = db
        .query("SELECT replay_key FROM federation_seen_requests", &[])
        .await
        .expect("replays")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(replays, ["new"]);
}

#[tokio::test]
async fn one_process_sweeps_at_a_time() {
    let server = TestServer::spawn_with(|c| c.retention.enabled = false).await;
    let holder = server.db().await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&SWEEP_LOCK_KEY])
        .await
        .expect("lock");
    let pool = parley_homeserver::db::create_pool(&server.config.database).expect("pool");
    let metrics = Metrics::new().expect("metrics");
    let outcome = sweep_once(&pool, &rules(), &metrics).await.expect("sweep");
    assert!(outcome.is_none(), "another session sweeps: this one skips");
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&SWEEP_LOCK_KEY])
        .await
        .expect("unlock");
    assert!(sweep_once(&pool, &rules(), &metrics).await.expect("sweep").is_some());
    // The lock went back with the connection: the next pass takes it again.
    assert!(sweep_once(&pool, &rules(), &metrics).await.expect("sweep").is_some());
}

#[tokio::test]
async fn the_admin_api_and_cli_show_table_sizes_retention_backlog_and_the_oldest_undelivered_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::spawn_with(|c| {
        c.retention.enabled = false;
        enable_admin(c, dir.path());
    })
    .await;
    let mut ann = device(&server, dir.path(), "sann", true).await;
    let mut ben = device(&server, dir.path(), "sben", true).await;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[user(&ben)]).await.expect("add");
    ben.sync().await.expect("ben joins");
    let first = ann.send_text(&group, "one", None).await.expect("send").seq;
    ann.send_text(&group, "two", None).await.expect("send");
    let db = server.db().await;
    db.execute(
        "UPDATE devices SET last_seen_at = now() - interval '60 days' WHERE device_id = $1",
        &[&ben.device_id().as_str()],
    )
    .await
    .expect("make ben idle");
    db.batch_execute(
        "INSERT INTO federation_destinations (destination, failures, last_error) VALUES ('far.example', 3, 'refused');
         INSERT INTO federation_seen_requests (replay_key, seen_at) VALUES ('old', now() - interval '1 day');
         ANALYZE",
    )
    .await
    .expect("setup");
    db.execute(
        "INSERT INTO federation_queue (destination, group_id, seq, enqueued_at)
         VALUES ('far.example', $1, $2, now() - interval '1 hour')",
        &[&group.as_str(), &first],
    )
    .await
    .expect("queue");

    let admin = AdminApi::of(&server);
    let (status, report) = admin.call(STORAGE, &[], None).await;
    assert_eq!(status, 200, "{report}");
    let tables = report["tables"].as_array().expect("tables");
    let table = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    assert!(table("group_messages")["bytes"].as_i64().unwrap() > 0);
    assert!(table("inbox")["rows_estimate"].as_i64().unwrap() >= 2, "{report}");
    assert!(report["database_size_bytes"].as_i64().unwrap() > 0);
    let backlog = &report["retention_backlog"];
    assert_eq!(backlog["idle_device_inbox_entries"], 2, "{report}");
    assert_eq!(backlog["replay_records"], 1, "{report}");
    assert_eq!(backlog["messages"], 0, "{report}");
    assert_eq!(report["retention_enabled"], false);
    let peer = &report["peers"][0];
    assert_eq!(peer["server"], "far.example", "{report}");
    assert_eq!(peer["queued"], 1);
    assert_eq!(peer["failures"], 3);
    assert_eq!(peer["last_error"], "refused");
    assert!(peer["oldest_enqueued_at"].is_string(), "{report}");
    let oldest = &report["inbox"]["oldest_entry"];
    assert_eq!(oldest["device_id"], ben.device_id().as_str(), "{report}");
    assert_eq!(oldest["group_id"], group.as_str());
    assert_eq!(report["inbox"]["devices_with_entries"], 1);

    // The same through `parley-homeserver admin storage`, for people and as JSON.
    let config_path = dir.path().join("homeserver.toml");
    std::fs::write(&config_path, toml::to_string(&server.config).expect("toml")).expect("config");
    // Awaited, not blocking: the server runs on this test's runtime.
    let run = |json: bool| {
        let mut command = tokio::process::Command::new(parley_tests::process::binary());
        command.args(["admin", "--config"]).arg(&config_path).arg("storage");
        if json {
            command.arg("--json");
        }
        command.env("RUST_LOG", "error").stdin(std::process::Stdio::null());
        async move {
            let output = command.output().await.expect("run parley-homeserver admin storage");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8(output.stdout).expect("utf-8")
        }
    };
    let human = run(false).await;
    for needle in [
        "group_messages",
        "inbox entries of idle devices",
        "far.example",
        "refused",
    ] {
        assert!(human.contains(needle), "{needle} in:\n{human}");
    }
    assert!(human.contains(ben.device_id().as_str()), "{human}");
    let json: serde_json::Value = serde_json::from_str(&run(true).await).expect("json");
    assert_eq!(json["retention_backlog"]["idle_device_inbox_entries"], 2);

    // After a sweep the backlog is gone.
    let swept = sweep(&server, &rules()).await;
    assert_eq!(swept.idle_inbox_entries, 2, "{swept:?}");
    let report = admin.ok(STORAGE, &[], None).await;
    assert_eq!(report["retention_backlog"]["idle_device_inbox_entries"], 0, "{report}");
    assert_eq!(report["retention_backlog"]["replay_records"], 0, "{report}");
    assert!(report["inbox"]["oldest_entry"].is_null(), "{report}");
}
