//! One domain served by three homeserver processes over one database (a.test), federating
//! with a second domain (b.test, one process): devices on different processes talk,
//! wake-ups cross processes, concurrent commits through different processes give one
//! winner, and killed processes lose and repeat nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use parley_sdk::messenger::Messenger;
use parley_tests::balancer::TcpBalancer;
use parley_tests::process::ProcessServer;
use parley_tests::server::wait_until;

use crate::helpers::{ProcessDevice, a_and_b_configs, joined, lines, sync_until};

/// The processes of a.test re-check waiting readers this rarely, so a reader on another
/// process is reached within the test only through the cross-process wake-up.
const RECHECK_SECS: u64 = 600;
/// With the wake-up delivery takes milliseconds; generous for a loaded machine.
const CROSS_PROCESS_PUSH: Duration = Duration::from_secs(30);

struct Cluster {
    /// The processes of a.test, all on one database.
    a: Vec<ProcessServer>,
    b: ProcessServer,
    /// b.test reaches a.test through this, as through an operator's load balancer.
    _a_federation: TcpBalancer,
    _dirs: [tempfile::TempDir; 3],
}

impl Cluster {
    async fn start() -> Self {
        let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
        let (mut a_config, b_config) = a_and_b_configs(dirs[0].path(), dirs[1].path()).await;
        // b.test reaches a.test at this address: the balancer's, in front of the processes.
        let a_federation = a_config.federation.as_ref().expect("federating").listen;
        a_config.limits.inbox_recheck_secs = RECHECK_SECS;
        let a = ProcessServer::start_replicas(a_config, dirs[0].path(), 3).await;
        let backends = a.iter().map(|p| p.federation_addr().unwrap()).collect();
        let balancer = TcpBalancer::start(a_federation, backends).await;
        let b = ProcessServer::start(b_config, dirs[1].path()).await;
        Self {
            a,
            b,
            _a_federation: balancer,
            _dirs: dirs,
        }
    }

    fn stores(&self) -> &Path {
        self._dirs[2].path()
    }

    async fn queued(&self) -> i64 {
        self.a[0].count("SELECT count(*) FROM federation_queue", &[]).await
    }
}

#[tokio::test]
async fn devices_spread_over_three_processes_share_groups_and_are_woken_across_them() {
    let cluster = Cluster::start().await;
    let dir = cluster.stores();
    let mut ann = ProcessDevice::register(&cluster.a[0], dir, "ann").await;
    let mut ben = ProcessDevice::register(&cluster.a[1], dir, "ben").await;
    let mut cat = ProcessDevice::register(&cluster.a[2], dir, "cat").await;
    let mut bob = ProcessDevice::register(&cluster.b, dir, "bob").await;
    let group = ann.messenger.create_group().await.expect("create through process 1");
    let members = [ben.user(), cat.user(), bob.user()];
    ann.messenger.add_members(&group, &members).await.expect("add");
    for d in [&mut ben, &mut cat, &mut bob] {
        joined(&mut d.messenger, &group).await;
    }

    // A message submitted through process 3 wakes a reader waiting on process 1.
    sync_until(&mut ann.messenger, &group, "nothing new", |_| true).await;
    for i in 0..3 {
        let text = format!("from process 3, {i}");
        let sent = std::time::Instant::now();
        let seq = cat.messenger.send_text(&group, &text, None).await.expect("send").seq;
        loop {
            ann.messenger.receive(Duration::from_secs(9)).await.expect("receive");
            let history = ann.messenger.history(&group, None).await.expect("history");
            if history.iter().any(|m| m.seq == seq) {
                break;
            }
            assert!(
                sent.elapsed() < CROSS_PROCESS_PUSH,
                "message {i} took over {CROSS_PROCESS_PUSH:?} to reach a reader on another process"
            );
        }
        assert!(sent.elapsed() < CROSS_PROCESS_PUSH, "message {i}: {:?}", sent.elapsed());
    }

    // Commits through processes 2 and 3 for the same epoch: one wins, the other catches
    // up and commits again; everyone converges.
    let dan = ProcessDevice::register(&cluster.a[2], dir, "dan").await;
    let eve = ProcessDevice::register(&cluster.a[0], dir, "eve").await;
    let (to_dan, to_eve) = ([dan.user()], [eve.user()]);
    // Adding others takes the admin role (issue 16).
    for admin in [ben.user(), cat.user()] {
        ann.messenger.promote(&group, &admin).await.expect("promote");
    }
    for d in [&mut ben, &mut cat] {
        let deadline = tokio::time::Instant::now() + crate::helpers::DELIVERY;
        while !d.messenger.group_settings(&group).await.expect("settings").is_admin {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never saw the promotion",
                d.name()
            );
            d.messenger.receive(Duration::from_millis(500)).await.expect("receive");
        }
    }
    let (by_ben, by_cat) = tokio::join!(
        ben.messenger.add_members(&group, &to_dan),
        cat.messenger.add_members(&group, &to_eve)
    );
    let epochs = BTreeSet::from([by_ben.expect("ben's add").epoch, by_cat.expect("cat's add").epoch]);
    assert_eq!(epochs.len(), 2, "one commit per epoch: {epochs:?}");
    assert_eq!(epochs.last().unwrap() - epochs.first().unwrap(), 1, "{epochs:?}");

    // Everyone writes once; all four see the same messages in the same (hub) order.
    let mut expected = Vec::new();
    for d in [&mut ann, &mut ben, &mut cat, &mut bob] {
        let text = format!("hello from {}", d.name());
        let seq = d.messenger.send_text(&group, &text, None).await.expect("send").seq;
        expected.push((seq, d.user().to_string(), text));
    }
    expected.sort();
    for d in [&mut ann, &mut ben, &mut cat, &mut bob] {
        sync_until(&mut d.messenger, &group, "everyone's hello", |h| {
            let hellos: Vec<_> = lines(h)
                .into_iter()
                .filter(|(_, _, t)| t.starts_with("hello"))
                .collect();
            hellos == expected
        })
        .await;
    }
}

#[tokio::test]
async fn a_websocket_reader_on_another_process_gets_a_small_entry_with_its_wake_up() {
    let cluster = Cluster::start().await;
    let dir = cluster.stores();
    let mut ann = ProcessDevice::register(&cluster.a[0], dir, "ann").await;
    let mut cat = ProcessDevice::register(&cluster.a[2], dir, "cat").await;
    let group = ann.messenger.create_group().await.expect("create");
    ann.messenger.add_members(&group, &[cat.user()]).await.expect("add");
    joined(&mut cat.messenger, &group).await;
    // Entries travel only once the writing process has counted the others listening.
    let peers = "parley_wakeup_relay_peers";
    assert!(
        wait_until(CROSS_PROCESS_PUSH, || async { cluster.a[2].metric(peers).await >= 2.0 }).await,
        "process 3 never counted the other two processes"
    );
    let inbox = cluster.a[0].sdk().with_access_token(ann.token().to_owned());
    let mut stream = inbox.inbox_stream(0).await.expect("ann's WebSocket on process 1");
    let received = "parley_wakeup_relayed_entries_total{direction=\"received\"}";
    let before = cluster.a[0].metric(received).await;

    let seq = cat
        .messenger
        .send_text(&group, "through process 3", None)
        .await
        .expect("send")
        .seq;
    let entry = tokio::time::timeout(CROSS_PROCESS_PUSH, async {
        loop {
            let entry = stream.next().await.expect("the stream stays open").expect("an entry");
            if entry.group_id == group && entry.seq == seq {
                return entry;
            }
        }
    })
    .await
    .expect("the message reaches ann's WebSocket on process 1");
    assert!(entry.payload.is_some(), "the message comes with its ciphertext");
    assert!(
        cluster.a[0].metric(received).await > before,
        "the entry reached process 1 inside the wake-up"
    );
}

#[tokio::test]
async fn a_process_killed_under_load_loses_and_repeats_nothing_and_its_devices_move() {
    let mut cluster = Cluster::start().await;
    let dir = cluster.stores().to_owned();
    let mut ann = ProcessDevice::register(&cluster.a[2], &dir, "ann").await;
    let mut ben = ProcessDevice::register(&cluster.a[1], &dir, "ben").await;
    let mut bob = ProcessDevice::register(&cluster.b, &dir, "bob").await;
    let group = ann.messenger.create_group().await.expect("create");
    ann.messenger
        .add_members(&group, &[ben.user(), bob.user()])
        .await
        .expect("add");
    joined(&mut ben.messenger, &group).await;
    joined(&mut bob.messenger, &group).await;

    // ann sends through process 3 while ben reads on process 2, which is killed midway;
    // ben then reads through process 1.
    const COUNT: usize = 40;
    let expected: Vec<String> = (0..COUNT).map(|i| format!("load {i}")).collect();
    let (first, others) = cluster.a.split_at_mut(1);
    let (first, second) = (&first[0], &mut others[0]);
    let sending = async {
        for (i, text) in expected.iter().enumerate() {
            if i == COUNT / 3 {
                second.kill();
            }
            ann.messenger
                .send_text(&group, text, None)
                .await
                .expect("process 3 accepts");
        }
    };
    let receiving = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let mut moved = false;
        loop {
            if ben.messenger.receive(Duration::from_millis(300)).await.is_err() && !moved {
                ben.reconnect(first, &dir).await;
                moved = true;
            }
            let texts = load_texts(&mut ben.messenger, &group).await;
            assert!(texts.len() <= COUNT, "a message twice: {texts:?}");
            if texts == expected {
                return moved;
            }
            assert!(tokio::time::Instant::now() < deadline, "ben has {texts:?}");
        }
    };
    let ((), moved) = tokio::join!(sending, receiving);
    assert!(moved, "ben's process was killed while he read");

    // bob on b.test gets them all once, in order, whichever process was sending to b.test.
    sync_until(&mut bob.messenger, &group, "all the load", |h| {
        let texts: Vec<String> = lines(h)
            .into_iter()
            .map(|(_, _, t)| t)
            .filter(|t| t.starts_with("load"))
            .collect();
        assert!(texts.len() <= COUNT, "a message twice: {texts:?}");
        texts == expected
    })
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || async { cluster.queued().await == 0 }).await,
        "the queue to b.test drains"
    );
}

async fn load_texts(m: &mut Messenger, group: &parley_specs::GroupId) -> Vec<String> {
    let history = m.history(group, None).await.unwrap_or_default();
    lines(&history)
        .into_iter()
        .map(|(_, _, t)| t)
        .filter(|t| t.starts_with("load"))
        .collect()
}

#[tokio::test]
async fn the_queue_to_another_server_drains_when_the_process_sending_it_dies() {
    let mut cluster = Cluster::start().await;
    let dir = cluster.stores().to_owned();
    let mut ann = ProcessDevice::register(&cluster.a[0], &dir, "ann").await;
    let mut bob = ProcessDevice::register(&cluster.b, &dir, "bob").await;
    let group = ann.messenger.create_group().await.expect("create");
    ann.messenger.add_members(&group, &[bob.user()]).await.expect("add");
    joined(&mut bob.messenger, &group).await;

    // b.test stops answering (SIGSTOP: its sockets stay open), so the process sending to
    // it holds the destination, and its batch, while it waits for an answer.
    cluster.b.signal("STOP");
    let mut sent = Vec::new();
    for i in 0..20 {
        let text = format!("queued {i}");
        let seq = ann
            .messenger
            .send_text(&group, &text, None)
            .await
            .expect("accepted")
            .seq;
        sent.push((seq, "ann@a.test".to_owned(), text));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let holder = loop {
        if let Some(pid) = destination_holder(&cluster.a[0]).await {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no process holds the destination b.test"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim = cluster
        .a
        .iter_mut()
        .find(|p| p.pid() == Some(holder))
        .expect("the holder is one of a.test's processes");
    victim.kill();
    cluster.b.signal("CONT");

    sync_until(
        &mut bob.messenger,
        &group,
        "all 20 queued messages, once, in order",
        |h| {
            let got = lines(h);
            assert!(got.len() <= sent.len(), "a message twice: {got:?}");
            got == sent
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || async { cluster.queued().await == 0 }).await,
        "the other processes drain the queue"
    );
}

/// The operating-system process id of the homeserver process holding the federation
/// destination row locked (its database connections are named after it).
async fn destination_holder(any: &ProcessServer) -> Option<u32> {
    let (db, conn) = tokio_postgres::connect(&any.config.database.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rows = db
        .query(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.relation = 'federation_destinations'::regclass
               AND l.mode = 'RowShareLock' AND a.state = 'idle in transaction'",
            &[],
        )
        .await
        .expect("pg_locks");
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    match names.as_slice() {
        [one] => one.strip_prefix("parley-homeserver/")?.parse().ok(),
        _ => None,
    }
}
