//! A revoked device leaves its conversations: its owner's other device commits its
//! removal from every group, its inbox WebSocket and long-poll end at once (on every
//! process of the domain), and the hub takes nothing more in an epoch it can read. When
//! no device of the owner is online (an administrator revoked it), the next member who
//! sends commits the removal first, transparently.

use std::collections::BTreeSet;
use std::time::Duration;

use parley_sdk::messenger::{Messenger, MessengerError};
use parley_specs::endpoints::admin::REVOKE_DEVICE;
use parley_specs::groups_api::{GroupMember, InboxQuery};
use parley_specs::{ErrorCode, GroupId};
use parley_tests::TestServer;
use parley_tests::admin::{AdminApi, enable_admin};

use crate::helpers::{device, joined, sync_until, user};

/// Well below the processes' periodic re-check of waiting readers (600 s here): what
/// ends them in time is the revocation itself.
const PROMPTLY: Duration = Duration::from_secs(15);

fn me(m: &Messenger) -> GroupMember {
    GroupMember {
        user_id: m.user_id().clone(),
        device_id: m.device_id().clone(),
    }
}

async fn hub_members(m: &Messenger, group: &GroupId) -> BTreeSet<GroupMember> {
    m.client()
        .get_group(group)
        .await
        .expect("group summary")
        .members
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_deleted_device_leaves_every_group_and_its_readers_end_on_every_process() {
    let a = TestServer::spawn_with(|c| c.limits.inbox_recheck_secs = 600).await;
    // A second process of the same domain, on the same database.
    let mut second = a.config.clone();
    second.listen.client = "127.0.0.1:0".parse().unwrap();
    let b = TestServer::start(second).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ann = device(&a, dir.path(), "ann", true).await;
    let mut bob = device(&a, dir.path(), "bob", true).await;
    let mut phone = device(&a, dir.path(), "bob", false).await;
    let gone = me(&phone);

    let groups = [ann.create_group().await.unwrap(), ann.create_group().await.unwrap()];
    for group in &groups {
        let added = ann.add_members(group, &[user(&bob)]).await.unwrap();
        assert_eq!(added.added.len(), 2, "both of bob's devices");
        joined(&mut bob, group).await;
        joined(&mut phone, group).await;
    }

    // The phone reads on the other process: a WebSocket and a long-poll.
    let token = phone.client().access_token().unwrap().to_owned();
    let on_b = b.sdk().with_access_token(&token);
    let mut socket = on_b.inbox_stream(0).await.expect("stream on the second process");
    let poll = tokio::spawn(async move {
        on_b.read_inbox(&InboxQuery {
            after: Some(1_000_000),
            limit: None,
            timeout_ms: Some(30_000),
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Bob deletes his phone from his laptop, through the first process.
    let deletion = bob.delete_device(&gone.device_id).await.expect("delete the phone");
    let removed: BTreeSet<_> = deletion.removed_from.iter().cloned().collect();
    assert_eq!(removed, groups.iter().cloned().collect(), "{deletion:?}");
    assert!(deletion.not_removed.is_empty(), "{deletion:?}");

    // Its readers end at once, on the process that held them.
    let closed = tokio::time::timeout(PROMPTLY, async {
        while let Some(entry) = socket.next().await {
            if entry.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the phone's WebSocket stayed open");
    let polled = tokio::time::timeout(PROMPTLY, poll)
        .await
        .expect("the long-poll ended")
        .unwrap();
    assert_eq!(polled.err().and_then(|e| e.code()), Some(ErrorCode::UnknownToken));

    // Its leaves are gone from both groups; a message sent now is for an epoch without it.
    for group in &groups {
        let members = hub_members(&ann, group).await;
        assert!(!members.contains(&gone), "{group}: {members:?}");
        assert_eq!(members.len(), 2);
    }
    let sent = ann
        .send_text(&groups[0], "after the phone went", None)
        .await
        .expect("send");
    let message_epoch = a
        .count(
            "SELECT epoch FROM group_messages WHERE group_id = $1 AND seq = $2",
            &[&groups[0].as_str(), &sent.seq],
        )
        .await;
    let removal_epoch = a
        .count(
            "SELECT max(epoch) + 1 FROM group_messages WHERE group_id = $1 AND kind = 1",
            &[&groups[0].as_str()],
        )
        .await;
    assert!(message_epoch >= removal_epoch, "{message_epoch} < {removal_epoch}");
    sync_until(&mut bob, &groups[0], "ann's message", |h| {
        h.iter().any(|m| m.text == "after the phone went")
    })
    .await;
    // The phone cannot read it: its token is refused.
    let refused = phone.sync().await.expect_err("revoked");
    assert_eq!(refused.code(), Some(ErrorCode::UnknownToken), "{refused}");
}

#[tokio::test]
async fn after_an_administrator_revokes_a_device_the_next_sender_removes_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(|c| {
        enable_admin(c, dir.path());
    })
    .await;
    let admin = AdminApi::of(&server);
    let mut ann = device(&server, dir.path(), "ann", true).await;
    let mut bob = device(&server, dir.path(), "bob", true).await;
    let group = ann.create_group().await.unwrap();
    ann.add_members(&group, &[user(&bob)]).await.unwrap();
    joined(&mut bob, &group).await;
    ann.send_text(&group, "hello bob", None).await.unwrap();
    let gone = me(&bob);
    let epoch = ann.client().get_group(&group).await.unwrap().epoch;

    // No device of bob is online to remove it.
    admin
        .ok(REVOKE_DEVICE, &[gone.user_id.as_str(), gone.device_id.as_str()], None)
        .await;
    let refused = ann
        .client()
        .submit_message(
            &group,
            &parley_specs::groups_api::SubmitMessageRequest {
                txn_id: "raw".into(),
                message: raw_application(&server, &group).await.into(),
                expires_at: None,
            },
        )
        .await
        .expect_err("the hub refuses while the revoked leaf is there");
    assert_eq!(refused.code(), Some(ErrorCode::MemberRevoked), "{refused}");

    // Ann's SDK removes it and sends, transparently.
    let sent = ann.send_text(&group, "bob's laptop is gone", None).await.expect("send");
    let summary = ann.client().get_group(&group).await.unwrap();
    assert_eq!(summary.members, vec![me(&ann)]);
    assert_eq!(summary.epoch, epoch + 1, "one commit removed it");
    assert_eq!(sent.epoch, epoch + 1);
    // The group takes messages again without more commits.
    ann.send_text(&group, "and again", None).await.expect("send");
    assert_eq!(ann.client().get_group(&group).await.unwrap().epoch, epoch + 1);
    let refused = bob.sync().await.expect_err("revoked");
    assert!(
        matches!(&refused, MessengerError::Api(e) if e.code() == Some(ErrorCode::UnknownToken)),
        "{refused}"
    );
}

/// An application message of `group` as stored by the hub (any will do: the hub refuses
/// before it looks at the ciphertext's keys), to submit by hand.
async fn raw_application(server: &TestServer, group: &GroupId) -> Vec<u8> {
    let db = server.db().await;
    let row = db
        .query_one(
            "SELECT payload FROM group_messages WHERE group_id = $1 AND kind = 2 ORDER BY seq DESC LIMIT 1",
            &[&group.as_str()],
        )
        .await
        .expect("an application message of the group");
    row.get(0)
}
