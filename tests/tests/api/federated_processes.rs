//! Two federating homeservers as real processes, killed with SIGKILL mid-traffic: nothing
//! accepted is lost, nothing is delivered twice, and order holds.

use parley_tests::process::ProcessServer;

use crate::helpers::{ProcessDevice, a_and_b_configs, joined, lines, sync_until};

#[tokio::test]
async fn killed_homeservers_lose_and_repeat_nothing_across_federation() {
    let (a_dir, b_dir, stores) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a_config, b_config) = a_and_b_configs(a_dir.path(), b_dir.path()).await;
    let mut a = ProcessServer::start(a_config, a_dir.path()).await;
    let mut b = ProcessServer::start(b_config, b_dir.path()).await;

    let mut ann = ProcessDevice::register(&a, stores.path(), "ann").await.messenger;
    let mut ben = ProcessDevice::register(&b, stores.path(), "ben").await.messenger;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[ben.user_id().clone()])
        .await
        .expect("add ben@b.test");
    joined(&mut ben, &group).await;

    // b.test is killed mid-stream; then the hub is killed with messages queued for b.test.
    let mut sent = Vec::new();
    for i in 0..30 {
        if i == 10 {
            b.kill();
        }
        let text = format!("message {i}");
        let seq = ann.send_text(&group, &text, None).await.expect("the hub accepts").seq;
        sent.push((seq, "ann@a.test".to_owned(), text));
    }
    a.kill();
    a.restart().await;
    b.restart().await;
    sync_until(&mut ben, &group, "all 30 messages, once each, in order", |h| {
        let got = lines(h);
        assert!(got.len() <= sent.len(), "a message twice: {got:?}");
        got == sent
    })
    .await;
    let queued = a.count("SELECT count(*) FROM federation_queue", &[]).await;
    assert!(
        parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
            a.count("SELECT count(*) FROM federation_queue", &[]).await == 0
        })
        .await,
        "the hub's queue drains (was {queued})"
    );

    // And back the other way, through the restarted follower to the restarted hub.
    let reply = ben
        .send_text(&group, "got them all", None)
        .await
        .expect("forwarded to the hub")
        .seq;
    sync_until(&mut ann, &group, "ben's reply", |h| h.iter().any(|m| m.seq == reply)).await;
}
