//! Replies, reactions, edits and delete-for-everyone: MLS application messages that name
//! an earlier message by the hub's sequence number. Across two federating servers (alice
//! on a.test, bob on b.test) each is seen by the other user; local commands on a message
//! that is not there, or not the user's own, fail before anything is sent; and a member
//! crafting an edit or delete of someone else's message (with openmls, behind a fake hub)
//! is refused by the receiving client.

use std::time::Duration;

use openmls::prelude::MlsGroup;
use parley_sdk::messenger::{Envelope, Event, HistoryMessage, Messenger, MessengerError};
use parley_specs::GroupId;
use parley_specs::groups_api::InboxEntryKind;
use parley_tests::mls::{TestMlsDevice, key_package_from};

use crate::helpers::{BehindFakeHub, device, federated_pair, joined, member, sync_until, user};

fn find(history: &[HistoryMessage], seq: i64) -> Option<&HistoryMessage> {
    history.iter().find(|m| m.seq == seq)
}

async fn history(m: &mut Messenger, group: &GroupId) -> Vec<HistoryMessage> {
    m.history(group, None).await.expect("history")
}

#[tokio::test]
async fn replies_reactions_edits_and_deletes_cross_servers_and_only_the_sender_edits() {
    let pair = federated_pair().await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = device(&pair.a, dir.path(), "alice", true).await;
    let mut bob = device(&pair.b, dir.path(), "bob", true).await;
    let group = alice.create_group().await.unwrap();
    alice.add_members(&group, &[user(&bob)]).await.expect("add bob");
    joined(&mut bob, &group).await;

    // A question, and bob's reply to it, quoting it by number.
    let question = alice.send_text(&group, "Lunch at noon?", None).await.expect("send").seq;
    sync_until(&mut bob, &group, "the question", |h| find(h, question).is_some()).await;
    let reply = bob
        .send_reply(&group, question, "Yes, see you there", None)
        .await
        .expect("reply")
        .seq;
    sync_until(&mut alice, &group, "bob's reply", |h| {
        find(h, reply).is_some_and(|m| m.reply_to == Some(question))
    })
    .await;

    // bob reacts; alice sees the count and who.
    let reacted = bob.toggle_reaction(&group, question, "👍").await.expect("react");
    assert!(reacted.message.as_ref().is_some_and(|m| m.reacted(&user(&bob), "👍")));
    let events = sync_until(&mut alice, &group, "bob's 👍", |h| {
        find(h, question).is_some_and(|m| m.reacted(&user(&bob), "👍"))
    })
    .await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MessageChanged { message, by, .. }
            if message.seq == question && *by == user(&bob))),
        "the UI learns of it: {events:?}"
    );
    // alice adds hers; toggling bob's takes it back, leaving hers.
    alice
        .toggle_reaction(&group, question, "👍")
        .await
        .expect("alice reacts");
    sync_until(&mut bob, &group, "alice's 👍", |h| {
        find(h, question).is_some_and(|m| m.reactions.get("👍").is_some_and(|u| u.len() == 2))
    })
    .await;
    let back = bob.toggle_reaction(&group, question, "👍").await.expect("take it back");
    assert!(back.message.as_ref().is_some_and(|m| !m.reacted(&user(&bob), "👍")));
    let alice_id = user(&alice);
    sync_until(&mut alice, &group, "bob's 👍 taken back", |h| {
        find(h, question).is_some_and(|m| {
            m.reactions.get("👍").map(|u| u.iter().cloned().collect::<Vec<_>>()) == Some(vec![alice_id.clone()])
        })
    })
    .await;

    // alice edits her question; bob sees the new text, marked edited.
    alice
        .edit_message(&group, question, "Lunch at one?")
        .await
        .expect("edit");
    sync_until(&mut bob, &group, "the edit", |h| {
        find(h, question).is_some_and(|m| m.text == "Lunch at one?" && m.edited_at.is_some())
    })
    .await;

    // bob may not edit or delete alice's message: refused before anything is sent.
    let last = bob.send_text(&group, "marker", None).await.expect("send").seq;
    let err = bob.edit_message(&group, question, "Lunch never").await.unwrap_err();
    assert!(
        matches!(&err, MessengerError::NotYourMessage { sender, .. } if *sender == user(&alice)),
        "{err}"
    );
    assert!(err.to_string().contains("only its sender may edit it"), "{err}");
    let err = bob.delete_for_everyone(&group, question).await.unwrap_err();
    assert!(matches!(err, MessengerError::NotYourMessage { .. }), "{err}");
    // A reaction to a message that does not exist: a clear error, nothing sent.
    let err = bob.toggle_reaction(&group, 9_999, "👍").await.unwrap_err();
    assert!(
        matches!(err, MessengerError::UnknownMessage { seq: 9_999, .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), format!("no message #9999 in the history of {group}"));
    let err = bob.send_reply(&group, 9_999, "to nothing", None).await.unwrap_err();
    assert!(matches!(err, MessengerError::UnknownMessage { .. }), "{err}");
    let err = bob.react(&group, question, "two words", false).await.unwrap_err();
    assert!(matches!(err, MessengerError::InvalidReaction(_)), "{err}");
    let next = bob
        .send_text(&group, "after the refusals", None)
        .await
        .expect("send")
        .seq;
    assert_eq!(next, last + 1, "the hub numbered nothing in between: nothing was sent");

    // alice deletes her question for everyone: gone from both histories; bob's reply stays,
    // quoting a number whose text is gone.
    alice.delete_for_everyone(&group, question).await.expect("delete");
    assert!(find(&history(&mut alice, &group).await, question).is_none());
    let events = sync_until(&mut bob, &group, "the delete", |h| find(h, question).is_none()).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DeletedForEveryone { seq, .. } if *seq == question)),
        "{events:?}"
    );
    let bob_history = history(&mut bob, &group).await;
    assert_eq!(find(&bob_history, reply).map(|m| m.reply_to), Some(Some(question)));
    assert!(!bob_history.iter().any(|m| m.text.contains("Lunch")));
    // And it is gone from the sealed stores' view: nothing to react to any more.
    let err = bob.toggle_reaction(&group, question, "👍").await.unwrap_err();
    assert!(matches!(err, MessengerError::UnknownMessage { .. }), "{err}");

    // A disappearing message: bob's reaction lives only as long as it does.
    let fleeting = alice
        .send_text(&group, "gone soon", Some(Duration::from_secs(3)))
        .await
        .expect("send")
        .seq;
    sync_until(&mut bob, &group, "the disappearing message", |h| {
        find(h, fleeting).is_some()
    })
    .await;
    let reacted = bob.toggle_reaction(&group, fleeting, "👀").await;
    if let Ok(reacted) = reacted {
        // The reaction went to the servers with the message's expiry.
        assert_eq!(
            reacted.message.as_ref().and_then(|m| m.expires_at),
            find(&history(&mut bob, &group).await, fleeting).and_then(|m| m.expires_at)
        );
    }
    sync_until(&mut alice, &group, "the message disappearing", |h| {
        find(h, fleeting).is_none()
    })
    .await;
    sync_until(&mut bob, &group, "the message disappearing", |h| {
        find(h, fleeting).is_none()
    })
    .await;
    let err = bob.toggle_reaction(&group, fleeting, "👀").await.unwrap_err();
    assert!(matches!(err, MessengerError::UnknownMessage { .. }), "{err}");
}

/// mallory's group with alice (the SDK, behind the fake hub) and bob (openmls), both
/// joined at epoch 1; returns mallory's and bob's MLS groups.
async fn group_with_alice_and_bob(s: &mut BehindFakeHub, id: &GroupId, bob: &TestMlsDevice) -> (MlsGroup, MlsGroup) {
    let (mut group, _) = s.mallory.create_group(id);
    let packages = vec![s.alice_key_package(), key_package_from(&bob.key_package(false))];
    let (_, welcome) = s.mallory.add(&mut group, &packages);
    group.merge_pending_commit(&s.mallory.provider).unwrap();
    s.deliver_from_mallory(InboxEntryKind::Welcome, id, 1, welcome.clone());
    let events = s.alice.sync().await.expect("sync");
    assert!(events.iter().any(|e| matches!(e, Event::Joined { .. })), "{events:?}");
    let bob_group = bob.join(&welcome);
    (group, bob_group)
}

#[tokio::test]
async fn an_edit_or_delete_of_another_users_message_is_refused_by_the_receiving_client() {
    let mut s = BehindFakeHub::start().await;
    let bob = s.bob_device().await;
    let id = GroupId::parse("forgededit@a.test").unwrap();
    let (mut mallory_group, mut bob_group) = group_with_alice_and_bob(&mut s, &id, &bob).await;
    let bytes = |e: &Envelope| serde_json::to_vec(e).unwrap();

    // bob's message #2.
    let text = Envelope::Text {
        body: "bob's words".into(),
        expires_at: None,
        reply_to: None,
    };
    let from_bob = bob.encrypt(&mut bob_group, &bytes(&text));
    s.fake
        .deliver(InboxEntryKind::Message, &id, 2, &member("bob@b.test", "B1"), from_bob);
    s.alice.sync().await.expect("sync");

    // mallory, a member, edits and deletes it, and reacts with too long a "emoji", and to
    // a message that does not exist.
    let forged = [
        Envelope::Edit {
            target: 2,
            body: "mallory's words".into(),
        },
        Envelope::Delete { target: 2 },
        Envelope::Reaction {
            target: 2,
            emoji: "x".repeat(100),
            remove: false,
        },
        Envelope::Reaction {
            target: 77,
            emoji: "👍".into(),
            remove: false,
        },
    ];
    for (i, envelope) in forged.iter().enumerate() {
        let message = s.mallory.encrypt(&mut mallory_group, &bytes(envelope));
        s.deliver_from_mallory(InboxEntryKind::Message, &id, 3 + i as i64, message);
    }
    let events = s.alice.sync().await.expect("sync");
    let refused: Vec<(i64, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ActionRefused { seq, by, reason, .. } => {
                assert_eq!(by.as_str(), "mallory@a.test");
                Some((*seq, reason.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 3, "{events:?}");
    assert_eq!(refused[0].0, 3);
    assert!(refused[0].1.contains("only its sender may edit it"), "{refused:?}");
    assert_eq!(refused[1].0, 4);
    assert!(refused[1].1.contains("only its sender may delete it"), "{refused:?}");
    assert_eq!(refused[2].0, 5);
    assert!(refused[2].1.contains("at most 32 bytes"), "{refused:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::MessageChanged { .. } | Event::DeletedForEveryone { .. })),
        "nothing applied: {events:?}"
    );
    let history = s.alice.history(&id, None).await.unwrap();
    let original = find(&history, 2).expect("bob's message is still there");
    assert_eq!(original.text, "bob's words");
    assert!(original.edited_at.is_none() && original.reactions.is_empty());

    // bob himself may: his edit, then his delete, apply.
    let edit = Envelope::Edit {
        target: 2,
        body: "bob's better words".into(),
    };
    let message = bob.encrypt(&mut bob_group, &bytes(&edit));
    s.fake
        .deliver(InboxEntryKind::Message, &id, 7, &member("bob@b.test", "B1"), message);
    let events = s.alice.sync().await.expect("sync");
    assert!(
        events.iter().any(|e| matches!(e, Event::MessageChanged { message, .. }
            if message.text == "bob's better words" && message.edited_at.is_some())),
        "{events:?}"
    );
    let delete = Envelope::Delete { target: 2 };
    let message = bob.encrypt(&mut bob_group, &bytes(&delete));
    s.fake
        .deliver(InboxEntryKind::Message, &id, 8, &member("bob@b.test", "B1"), message);
    let events = s.alice.sync().await.expect("sync");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DeletedForEveryone { seq: 2, .. })),
        "{events:?}"
    );
    assert!(s.alice.history(&id, None).await.unwrap().is_empty());
}
