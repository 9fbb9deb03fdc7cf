//! Reactions, edits and delete-for-everyone: application messages that act on an earlier
//! message of the conversation, named by the hub's sequence number.
//!
//! Sending: the target must be in this device's history (not expired), and for edits and
//! deletes it must be a message of this user; otherwise the call fails before anything
//! is sent. The action is submitted with the target's expiry, so the servers drop it when
//! the target disappears.
//!
//! Receiving: the hub numbers a group's messages in one order that every member sees, and
//! an action is always sent after its target was, so its target comes first. A target
//! missing here (it expired, was deleted, came before this device joined, or never
//! existed) will therefore never arrive: the action is dropped, not kept pending. An edit
//! or delete by another user than the target's sender, or a reaction that breaks the
//! rules, is refused ([`Event::ActionRefused`]) and changes nothing.

use parley_specs::GroupId;
use parley_specs::groups_api::{GroupMember, InboxEntry};
use serde::Serialize;
use time::OffsetDateTime;

use super::envelope::{Envelope, check_emoji};
use super::error::MessengerError;
use super::events::Event;
use super::history::{HistoryMessage, may_delete_for_everyone, may_edit};
use super::send::MAX_TEXT_BYTES;
use super::store::StoreLock;
use super::{Messenger, Result};

/// A reaction, edit or delete the hub accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentAction {
    /// The conversation.
    pub group_id: GroupId,
    /// The action's own place in the hub's order.
    pub seq: i64,
    /// The message acted on.
    pub target: i64,
    /// The target as it is now on this device (`None` once deleted).
    pub message: Option<HistoryMessage>,
}

/// What an action does to its target.
enum Action {
    React { emoji: String, remove: bool },
    Edit { body: String },
    Delete,
}

impl Action {
    fn envelope(&self, target: i64) -> Envelope {
        match self {
            Self::React { emoji, remove } => Envelope::Reaction {
                target,
                emoji: emoji.clone(),
                remove: *remove,
            },
            Self::Edit { body } => Envelope::Edit {
                target,
                body: body.clone(),
            },
            Self::Delete => Envelope::Delete { target },
        }
    }
}

impl Messenger {
    /// Reacts to message `seq` with `emoji` (or, with `remove`, takes this user's reaction
    /// back). Fails with [`MessengerError::UnknownMessage`] when the message is not in
    /// this device's history, and [`MessengerError::InvalidReaction`] for an emoji that
    /// breaks the rules ([`check_emoji`](super::check_emoji)); nothing is sent then.
    pub async fn react(&mut self, group_id: &GroupId, seq: i64, emoji: &str, remove: bool) -> Result<SentAction> {
        check_emoji(emoji).map_err(MessengerError::InvalidReaction)?;
        let action = Action::React {
            emoji: emoji.to_owned(),
            remove,
        };
        self.act(group_id, seq, action).await
    }

    /// Adds this user's reaction `emoji` to message `seq`, or takes it back when it is
    /// there already; see [`Messenger::react`].
    pub async fn toggle_reaction(&mut self, group_id: &GroupId, seq: i64, emoji: &str) -> Result<SentAction> {
        let reacted = {
            let lock = self.begin().await?;
            let result = self
                .live_target(group_id, seq)
                .map(|m| m.reacted(&self.state.user_id, emoji));
            self.end(lock, result)?
        };
        self.react(group_id, seq, emoji, reacted).await
    }

    /// Replaces the text of message `seq`, a message of this user, for everyone; the
    /// message is marked edited. Fails with [`MessengerError::NotYourMessage`] for another
    /// user's message, [`MessengerError::UnknownMessage`] when it is not here.
    pub async fn edit_message(&mut self, group_id: &GroupId, seq: i64, text: &str) -> Result<SentAction> {
        super::send::check_text_length(text)?;
        self.act(group_id, seq, Action::Edit { body: text.to_owned() }).await
    }

    /// Deletes message `seq`, a message of this user, from every member's history (and
    /// from this device's, as [`Messenger::delete_message`] does). Fails with
    /// [`MessengerError::NotYourMessage`] for another user's message.
    pub async fn delete_for_everyone(&mut self, group_id: &GroupId, seq: i64) -> Result<SentAction> {
        self.act(group_id, seq, Action::Delete).await
    }

    async fn act(&mut self, group_id: &GroupId, target: i64, action: Action) -> Result<SentAction> {
        let lock = self.begin().await?;
        // Checked before anything goes out, then again after catching up.
        let result = match self.check_action(group_id, target, &action) {
            Ok(()) => self.act_locked(&lock, group_id, target, action).await,
            Err(e) => Err(e),
        };
        self.end(lock, result)
    }

    async fn act_locked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        target: i64,
        action: Action,
    ) -> Result<SentAction> {
        self.prepare_online(lock).await?;
        self.check_action(group_id, target, &action)?;
        let blocked = self.changed_contacts_in(group_id)?;
        if !blocked.is_empty() {
            self.save(lock)?;
            return Err(MessengerError::VerifiedContactChanged { users: blocked });
        }
        // The action lives as long as its target: the servers drop it with the target.
        let (expires_at, attachment) = {
            let message = self.live_target(group_id, target)?;
            (message.expires_at, message.attachment.clone())
        };
        let accepted = self
            .send_envelope(lock, group_id, &action.envelope(target), expires_at)
            .await?;
        let me = self.state.user_id.clone();
        let now = OffsetDateTime::now_utc();
        let message = match self.state.conversations.get_mut(group_id) {
            None => None,
            Some(conversation) => match &action {
                Action::Delete => {
                    conversation.delete(target);
                    None
                }
                Action::React { emoji, remove } => conversation.live_message_mut(target, now).map(|m| {
                    // Checked above: this user's count allows it.
                    let _ = m.react(&me, emoji, *remove);
                    m.clone()
                }),
                Action::Edit { body } => conversation.live_message_mut(target, now).map(|m| {
                    m.text = body.clone();
                    m.edited_at = Some(now);
                    m.clone()
                }),
            },
        };
        self.save(lock)?;
        if let (Action::Delete, Some(file)) = (&action, attachment) {
            // A file goes with its message: its origin, this user's server, deletes the
            // ciphertext, and no other server keeps a copy. The message is deleted already;
            // if this fails, the origin's sweeper deletes the blob at `[files] max_age_secs`.
            if file.server == me.server_name() {
                let _ = self.client.delete_upload(&file.blob_id).await;
            }
        }
        Ok(SentAction {
            group_id: group_id.clone(),
            seq: accepted.seq,
            target,
            message,
        })
    }

    /// Message `seq` of the group's history, unexpired; else why not.
    pub(crate) fn live_target(&self, group_id: &GroupId, seq: i64) -> Result<&HistoryMessage> {
        let conversation = self
            .state
            .conversations
            .get(group_id)
            .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))?;
        if !conversation.member {
            return Err(MessengerError::NotAMember(group_id.clone()));
        }
        let now = OffsetDateTime::now_utc();
        conversation
            .messages
            .binary_search_by_key(&seq, |m| m.seq)
            .ok()
            .and_then(|at| conversation.messages.get(at))
            .filter(|m| !m.expired(now))
            .ok_or(MessengerError::UnknownMessage {
                group: group_id.clone(),
                seq,
            })
    }

    /// Whether this user may apply `action` to message `target` now.
    fn check_action(&self, group_id: &GroupId, target: i64, action: &Action) -> Result<()> {
        let message = self.live_target(group_id, target)?;
        let me = &self.state.user_id;
        let refused = |action: &'static str| MessengerError::NotYourMessage {
            group: group_id.clone(),
            seq: target,
            sender: message.sender.clone(),
            action,
        };
        match action {
            Action::React { emoji, remove } => {
                let mut trial = message.clone();
                trial
                    .react(me, emoji, *remove)
                    .map_err(MessengerError::InvalidReaction)?;
            }
            Action::Edit { .. } if !may_edit(message, me) => return Err(refused("edit it")),
            Action::Delete if !may_delete_for_everyone(message, me) => return Err(refused("delete it for everyone")),
            Action::Edit { .. } | Action::Delete => {}
        }
        Ok(())
    }

    /// Applies a received reaction, edit or delete (`envelope`) of `sender`, carried by
    /// inbox entry `entry`. Breaking a rule gives [`Event::ActionRefused`]; a missing
    /// target drops it (see the module's documentation).
    pub(crate) fn apply_received_action(&mut self, entry: &InboxEntry, sender: &GroupMember, envelope: Envelope) {
        let group_id = &entry.group_id;
        let by = &sender.user_id;
        let now = OffsetDateTime::now_utc();
        let Some(conversation) = self.state.conversations.get_mut(group_id) else {
            return;
        };
        let outcome = match envelope {
            Envelope::Reaction { target, emoji, remove } => {
                let Some(message) = conversation.live_message_mut(target, now) else {
                    return;
                };
                match check_emoji(&emoji).and_then(|()| message.react(by, &emoji, remove)) {
                    Ok(true) => Ok(Some(message.clone())),
                    Ok(false) => Ok(None),
                    Err(reason) => Err(format!("a reaction to #{target}: {reason}")),
                }
            }
            Envelope::Edit { target, body } => {
                let Some(message) = conversation.live_message_mut(target, now) else {
                    return;
                };
                if !may_edit(message, by) {
                    Err(format!(
                        "an edit of #{target}, which {} sent: only its sender may edit it",
                        message.sender
                    ))
                } else if body.len() > MAX_TEXT_BYTES {
                    Err(format!("an edit of #{target} longer than {MAX_TEXT_BYTES} bytes"))
                } else {
                    message.text = body;
                    message.edited_at = Some(entry.sent_at);
                    Ok(Some(message.clone()))
                }
            }
            Envelope::Delete { target } => {
                let Some(message) = conversation.live_message_mut(target, now) else {
                    return;
                };
                if may_delete_for_everyone(message, by) {
                    conversation.delete(target);
                    self.undelivered.push(Event::DeletedForEveryone {
                        group_id: group_id.clone(),
                        seq: target,
                        by: by.clone(),
                    });
                    return;
                }
                let reason = format!(
                    "a delete of #{target}, which {} sent: only its sender may delete it for everyone",
                    message.sender
                );
                Err(reason)
            }
            _ => return,
        };
        match outcome {
            Ok(Some(message)) => self.undelivered.push(Event::MessageChanged {
                group_id: group_id.clone(),
                message,
                by: by.clone(),
            }),
            Ok(None) => {}
            Err(reason) => self.undelivered.push(Event::ActionRefused {
                group_id: group_id.clone(),
                seq: entry.seq,
                by: by.clone(),
                reason,
            }),
        }
    }
}
