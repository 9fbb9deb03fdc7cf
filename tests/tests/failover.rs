//! PostgreSQL failover under load, with an existing HA engine: Patroni (and etcd) run one
//! primary and one synchronous standby; two homeserver processes of one domain use the
//! multi-host connection string (`target_session_attrs=read-write`). Two devices, one on
//! each process, send continuously; the primary's Patroni and PostgreSQL are SIGKILLed.
//! The standby is promoted, sending resumes by itself, every message that got a 200 is
//! in the database and in the recipient's history exactly once, and while no primary
//! was reachable the processes answered `503 database_unavailable` with `Retry-After`,
//! never a 500 and never a hang. The numbers (promotion time, the window in which
//! requests failed) are printed.
//!
//! Its own test binary, so that it runs alone: its timings mean something only on a
//! machine that is not running the rest of the suite at the same time. Skipped (saying
//! why) when Patroni or etcd is not installed, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parley_sdk::messenger::Messenger;
use parley_specs::client_api::RegisterRequest;
use parley_specs::endpoints::client;
use parley_specs::{ErrorBody, ErrorCode, GroupId};
use parley_tests::patroni::{self, PatroniCluster};
use parley_tests::process::ProcessServer;
use parley_tests::server::{config_on, https_client};

const PASSPHRASE: &str = "a passphrase for the store";
/// Messages each device sends before the primary is killed.
const BEFORE_KILL: usize = 10;
/// Successful sends each device makes after the new primary took over, to show sending resumed.
const AFTER_PROMOTION: usize = 10;
/// Bounds on the phases, so the test ends (well under two minutes when all is well).
const CLUSTER_READY: Duration = Duration::from_secs(60);
const PROMOTION: Duration = Duration::from_secs(45);
/// From the first send to the last one after the promotion.
const SENDING: Duration = Duration::from_secs(90);
/// A request answers within this, whatever the database does (pool and connect
/// timeouts are 5 s; the SDK's retries stop after 30 s).
const NO_HANG: Duration = Duration::from_secs(45);

/// One send as the test saw it.
struct Sent {
    text: String,
    started: Instant,
    ended: Instant,
    /// The hub's sequence number, for a 200.
    seq: Option<i64>,
    error: Option<String>,
}

/// One raw request of the prober.
struct Probe {
    at: Instant,
    status: u16,
    code: Option<ErrorCode>,
    retry_after: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_resume_after_the_primary_is_killed_and_no_acknowledged_message_is_lost_or_repeated() {
    if let Some(reason) = patroni::unavailable_reason() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the failover test: {reason}"
        );
        println!("skipped: {reason}");
        return;
    }
    let t0 = Instant::now();
    let mut cluster = PatroniCluster::start(CLUSTER_READY).await;
    println!(
        "failover: Patroni primary + synchronous standby ready in {:.1?}",
        t0.elapsed()
    );
    cluster.create_database("parley").await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config_on(cluster.url("parley"));
    config.database.pool_size = 8;
    config.database.pool_timeout_ms = 5_000;
    // Readers re-check the database often: a wake-up lost during the failover only delays.
    config.limits.inbox_recheck_secs = 2;
    let servers = ProcessServer::start_replicas(config, dir.path(), 2).await;
    let (mut ann, ann_token) = device(&servers[0], dir.path(), "ann").await;
    let (mut ben, _) = device(&servers[1], dir.path(), "ben").await;
    let group = ann.create_group().await.expect("create a group");
    ann.add_members(&group, &[ben.user_id().clone()])
        .await
        .expect("add ben");
    joined(&mut ben, &group).await;
    println!(
        "failover: two homeserver processes, a conversation, after {:.1?}",
        t0.elapsed()
    );

    let progress = Progress::default();
    // Raw requests to both processes, no SDK retries: what a client sees during failover.
    let probing = async {
        let http = https_client(None);
        while !progress.stop.load(Ordering::Relaxed) {
            for server in &servers {
                let url = format!("{}{}", server.url, client::WHOAMI.path);
                let request = http.get(url).bearer_auth(&ann_token).send();
                let response = tokio::time::timeout(NO_HANG, request)
                    .await
                    .unwrap_or_else(|_| panic!("a request to {} hung for {NO_HANG:?}", server.url))
                    .expect("the homeserver process answers");
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.bytes().await.unwrap_or_default();
                let code = serde_json::from_slice::<ErrorBody>(&body).ok().map(|b| b.error);
                progress.probes.lock().unwrap().push(Probe {
                    at: Instant::now(),
                    status,
                    code,
                    retry_after,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let failing_over = async {
        // Some traffic first, then SIGKILL to the primary's Patroni and PostgreSQL.
        let enough = parley_tests::wait_until(Duration::from_secs(60), || async {
            progress.acknowledged.load(Ordering::Relaxed) >= 2 * BEFORE_KILL
        })
        .await;
        assert!(enough, "no traffic before the kill");
        let old = cluster.leader().await.expect("a leader");
        let standby = cluster.sync_standby().await;
        assert!(
            standby.is_some_and(|s| s != old),
            "a synchronous standby besides the leader"
        );
        println!("failover: before the kill\n{}", cluster.list());
        let killed = Instant::now();
        cluster.kill_node(old);
        *progress.killed_at.lock().unwrap() = Some(killed);
        let Some(new) = cluster.wait_for_new_leader(old, PROMOTION).await else {
            progress.stop.store(true, Ordering::Relaxed);
            panic!("the standby was not promoted within {PROMOTION:?}\n{}", cluster.logs());
        };
        *progress.promoted_at.lock().unwrap() = Some(Instant::now());
        assert_eq!(Some(new), standby, "the synchronous standby is the one promoted");
        println!(
            "failover: {} promoted {:.1?} after the SIGKILL of {}\n{}",
            cluster.nodes[new].name,
            killed.elapsed(),
            cluster.nodes[old].name,
            cluster.list()
        );
    };
    let senders = async {
        let both = async {
            tokio::join!(
                send_until_resumed(&mut ann, "ann", &group, &progress),
                send_until_resumed(&mut ben, "ben", &group, &progress)
            )
        };
        let sent = tokio::time::timeout(SENDING, both).await;
        progress.stop.store(true, Ordering::Relaxed);
        sent.unwrap_or_else(|_| panic!("sending did not resume within {SENDING:?} of the start"))
    };
    let ((ann_sent, ben_sent), (), ()) = tokio::join!(senders, probing, failing_over);
    let killed = progress.killed_at.lock().unwrap().expect("the primary was killed");
    let promoted = progress.promoted_at.lock().unwrap().expect("the standby was promoted");

    // What clients saw: 200, or 503 database_unavailable with Retry-After; never a 500.
    let probes = std::mem::take(&mut *progress.probes.lock().unwrap());
    for p in &probes {
        match p.status {
            200 => {}
            503 => {
                assert_eq!(p.code, Some(ErrorCode::DatabaseUnavailable), "a 503's code");
                assert!(p.retry_after.is_some(), "a 503 without Retry-After");
            }
            other => panic!("a request answered {other} ({:?}) during the failover", p.code),
        }
    }
    let failed: Vec<&Probe> = probes.iter().filter(|p| p.status != 200).collect();
    let secs = |t: Instant| t.saturating_duration_since(killed).as_secs_f64();
    match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => println!(
            "failover: {} of {} raw requests answered 503 database_unavailable, from {:.1} s to {:.1} s after the kill ({:.1} s)",
            failed.len(),
            probes.len(),
            secs(first.at),
            secs(last.at),
            last.at.duration_since(first.at).as_secs_f64()
        ),
        _ => println!("failover: no raw request failed ({} requests)", probes.len()),
    }
    let all_sent: Vec<&Sent> = ann_sent.iter().chain(&ben_sent).collect();
    let errors: Vec<&Sent> = all_sent.iter().copied().filter(|s| s.error.is_some()).collect();
    // The send window: per device, the longest time between two sends answered 200.
    for (name, sent) in [("ann", &ann_sent), ("ben", &ben_sent)] {
        let done: Vec<Instant> = sent.iter().filter(|s| s.seq.is_some()).map(|s| s.ended).collect();
        if let Some((from, to)) = done
            .windows(2)
            .map(|w| (w[0], w[1]))
            .max_by_key(|(a, b)| b.duration_since(*a))
        {
            println!(
                "failover: {name}'s sends (SDK, retrying 503 as told): longest time without an acknowledged send {:.1} s, from {:+.1} s to {:+.1} s around the kill",
                to.duration_since(from).as_secs_f64(),
                signed_secs(from, killed),
                signed_secs(to, killed),
            );
        }
    }
    println!(
        "failover: promotion took {:.1} s; {} of {} sends returned an error to the application",
        promoted.duration_since(killed).as_secs_f64(),
        errors.len(),
        all_sent.len()
    );
    for e in &errors {
        println!(
            "failover:   {:?} failed {:.1} s after the kill: {}",
            e.text,
            secs(e.ended),
            e.error.as_deref().unwrap_or_default()
        );
    }

    // Every acknowledged message is stored, once, on the new primary.
    let acknowledged: BTreeMap<i64, &str> = all_sent
        .iter()
        .filter_map(|s| Some((s.seq?, s.text.as_str())))
        .collect();
    assert_eq!(
        acknowledged.len(),
        all_sent.iter().filter(|s| s.seq.is_some()).count(),
        "two acknowledged sends got the same sequence number"
    );
    let (db, conn) = tokio_postgres::connect(&cluster.url("parley"), tokio_postgres::NoTls)
        .await
        .expect("connect to the new primary");
    tokio::spawn(conn);
    let stored: BTreeSet<i64> = db
        .query(
            "SELECT seq FROM group_messages WHERE group_id = $1 AND kind = 2",
            &[&group.as_str()],
        )
        .await
        .expect("read the stored messages")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<_> = acknowledged.iter().filter(|(seq, _)| !stored.contains(seq)).collect();
    assert!(lost.is_empty(), "acknowledged but not in the database: {lost:?}");

    // And every acknowledged message reaches the other device, exactly once.
    check_received(&mut ben, &group, &ann_sent, "ann").await;
    check_received(&mut ann, &group, &ben_sent, "ben").await;
    println!(
        "failover: {} messages acknowledged ({} stored), all present once after the failover; whole test {:.1?}",
        acknowledged.len(),
        stored.len(),
        t0.elapsed()
    );
}

/// `t` relative to `origin` in seconds, negative before it.
fn signed_secs(t: Instant, origin: Instant) -> f64 {
    if t >= origin {
        t.duration_since(origin).as_secs_f64()
    } else {
        -origin.duration_since(t).as_secs_f64()
    }
}

/// What the concurrent parts of the test share.
#[derive(Default)]
struct Progress {
    stop: AtomicBool,
    /// Sends answered 200 so far, by both devices.
    acknowledged: AtomicUsize,
    probes: Mutex<Vec<Probe>>,
    killed_at: Mutex<Option<Instant>>,
    promoted_at: Mutex<Option<Instant>>,
}

impl Progress {
    /// Sends of `sent` answered 200 that began after the new primary took over.
    fn after_promotion(&self, sent: &[Sent]) -> usize {
        let promoted = *self.promoted_at.lock().unwrap();
        promoted.map_or(0, |p| sent.iter().filter(|s| s.seq.is_some() && s.started > p).count())
    }
}

/// Sends "`name` 1", "`name` 2", … until `AFTER_PROMOTION` of them sent after the
/// promotion were answered 200 (or the test stops).
async fn send_until_resumed(m: &mut Messenger, name: &str, group: &GroupId, progress: &Progress) -> Vec<Sent> {
    let mut sent: Vec<Sent> = Vec::new();
    let mut i = 0;
    while !progress.stop.load(Ordering::Relaxed) && progress.after_promotion(&sent) < AFTER_PROMOTION {
        i += 1;
        let text = format!("{name} {i}");
        let started = Instant::now();
        let answer = tokio::time::timeout(NO_HANG, m.send_text(group, &text, None)).await;
        let ended = Instant::now();
        let (seq, error) = match answer {
            Ok(Ok(message)) => {
                progress.acknowledged.fetch_add(1, Ordering::Relaxed);
                (Some(message.seq), None)
            }
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => panic!("{name}'s send of {text:?} hung for {NO_HANG:?}"),
        };
        if error.is_some() {
            // The SDK waited as the server asked already; a short pause, then the next one.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent.push(Sent {
            text,
            started,
            ended,
            seq,
            error,
        });
    }
    sent
}

/// Syncs `reader` until it has every message of `sent` that got a 200; checks that no text
/// appears twice in its history.
async fn check_received(reader: &mut Messenger, group: &GroupId, sent: &[Sent], sender: &str) {
    let wanted: BTreeSet<&str> = sent
        .iter()
        .filter(|s| s.seq.is_some())
        .map(|s| s.text.as_str())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let _ = reader.receive(Duration::from_millis(500)).await;
        let history = reader.history(group, None).await.unwrap_or_default();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for m in history.iter().filter(|m| m.text.starts_with(sender)) {
            *seen.entry(m.text.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "messages received more than once: {repeated:?}");
        let missing: Vec<_> = wanted.iter().filter(|t| !seen.contains_key(*t)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never received {missing:?}",
            reader.user_id()
        );
    }
}

/// A new user `name` with one device on `server`, its messenger's store in `dir`.
async fn device(server: &ProcessServer, dir: &std::path::Path, name: &str) -> (Messenger, String) {
    let request = RegisterRequest {
        username: name.into(),
        password: "correct horse battery staple".into(),
        device_name: Some("laptop".into()),
        invite_token: None,
        signature_key: None,
    };
    let session = server.sdk().register(&request).await.expect("register");
    let client = server.sdk().with_access_token(&session.access_token);
    let mut messenger = Messenger::open(
        client,
        session.user_id,
        session.device_id,
        dir.join(format!("{name}.sealed")),
        PASSPHRASE,
    )
    .await
    .expect("open the store");
    messenger.sync().await.expect("first sync");
    (messenger, session.access_token)
}

async fn joined(m: &mut Messenger, group: &GroupId) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !m.groups().await.expect("groups").iter().any(|g| g.group_id == *group) {
        assert!(tokio::time::Instant::now() < deadline, "never joined {group}");
        m.receive(Duration::from_millis(500)).await.expect("receive");
    }
}
