//! Sending: an [`Envelope`] encrypted for the group (the sender ratchet saved before the
//! ciphertext leaves, so a crash never reuses a key), submitted with a transaction id
//! (network retries are stored once), re-encrypted after a catch-up when the group moved
//! too many epochs on (`wrong_epoch`).

use std::time::Duration;

use parley_specs::groups_api::{Accepted, SubmitMessageRequest};
use parley_specs::{ErrorCode, GroupId, UserId};
use serde::Serialize;
use time::OffsetDateTime;

use super::commits::{current_epoch, encode};
use super::envelope::{Envelope, Presence};
use super::error::{MessengerError, mls};
use super::history::HistoryMessage;
use super::store::StoreLock;
use super::{Messenger, Result, new_txn_id};
use crate::Error;

/// Longest text one message carries (the homeserver's default message limit is 48 KiB,
/// and encryption adds a little).
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Encryptions tried when the group keeps moving on.
const MAX_SEND_ATTEMPTS: usize = 3;
/// Resubmissions (same transaction id) after a network failure.
const NETWORK_RETRIES: u32 = 2;
/// Typing and presence messages are of no use later: the servers drop them after this.
const SIGNAL_LIFETIME: time::Duration = time::Duration::minutes(2);

/// A message the hub accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentMessage {
    /// The conversation.
    pub group_id: GroupId,
    /// Its place in the hub's order.
    pub seq: i64,
    /// The epoch it was accepted in.
    pub epoch: u64,
    /// When it was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// When it disappears.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl Messenger {
    /// Sends `text` to the group; with `expires_in` (or else the conversation's timer, see
    /// [`Messenger::set_timer`]), a disappearing message (deleted by the servers and by
    /// every device, this one included, when the time passes). The message joins this
    /// device's history at its place in the hub's order.
    ///
    /// Fails with [`MessengerError::VerifiedContactChanged`] while a verified member's
    /// devices differ from the verified ones, until the user verifies them again
    /// ([`Messenger::mark_verified`]) or accepts the change
    /// ([`Messenger::acknowledge_change`]).
    pub async fn send_text(
        &mut self,
        group_id: &GroupId,
        text: &str,
        expires_in: Option<Duration>,
    ) -> Result<SentMessage> {
        check_text_length(text)?;
        let lock = self.begin().await?;
        let result = self.send_text_locked(&lock, group_id, text, expires_in, None).await;
        self.end(lock, result)
    }

    /// Sends `text` as a reply to message `reply_to` of the group's history (which must be
    /// on this device: otherwise [`MessengerError::UnknownMessage`] and nothing is sent).
    /// The reply carries only the sequence number, never the quoted text, so deleting or
    /// expiring the original removes its text from the reply's view too. Otherwise as
    /// [`Messenger::send_text`].
    pub async fn send_reply(
        &mut self,
        group_id: &GroupId,
        reply_to: i64,
        text: &str,
        expires_in: Option<Duration>,
    ) -> Result<SentMessage> {
        check_text_length(text)?;
        let lock = self.begin().await?;
        let result = match self.live_target(group_id, reply_to) {
            Ok(_) => {
                self.send_text_locked(&lock, group_id, text, expires_in, Some(reply_to))
                    .await
            }
            Err(e) => Err(e),
        };
        self.end(lock, result)
    }

    async fn send_text_locked(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        text: &str,
        expires_in: Option<Duration>,
        reply_to: Option<i64>,
    ) -> Result<SentMessage> {
        self.prepare_online(lock).await?;
        if let Some(target) = reply_to {
            // Still there after catching up (it may have expired or been deleted).
            self.live_target(group_id, target)?;
        }
        let blocked = self.changed_contacts_in(group_id)?;
        if !blocked.is_empty() {
            // Keep the flags the check may have just raised.
            self.save(lock)?;
            return Err(MessengerError::VerifiedContactChanged { users: blocked });
        }
        let expires_in = expires_in.or_else(|| self.conversation_timer(group_id));
        let sent_at = OffsetDateTime::now_utc();
        let expires_at = match expires_in {
            None => None,
            Some(wait) => Some(
                time::Duration::try_from(wait)
                    .ok()
                    .and_then(|wait| sent_at.checked_add(wait))
                    .ok_or_else(|| MessengerError::Mls("the expiry is too far in the future".into()))?,
            ),
        };
        let envelope = Envelope::Text {
            body: text.to_owned(),
            expires_at,
            reply_to,
        };
        let accepted = self.send_envelope(lock, group_id, &envelope, expires_at).await?;
        let message = HistoryMessage {
            expires_at,
            reply_to,
            ..HistoryMessage::new(
                accepted.seq,
                self.state.user_id.clone(),
                self.state.device_id.clone(),
                sent_at,
                text.to_owned(),
            )
        };
        if let Some(conversation) = self.state.conversations.get_mut(group_id) {
            conversation.record(message);
        }
        self.save(lock)?;
        Ok(SentMessage {
            group_id: group_id.clone(),
            seq: accepted.seq,
            epoch: accepted.epoch,
            sent_at,
            expires_at,
        })
    }

    /// Tells the group's other devices that this user is typing (or stopped). Not kept in
    /// any history; the servers drop it after a few minutes.
    pub async fn send_typing(&mut self, group_id: &GroupId, typing: bool) -> Result<()> {
        let lock = self.begin().await?;
        let result = self.send_signal(&lock, group_id, &Envelope::Typing { typing }).await;
        self.end(lock, result)
    }

    /// Tells every group this device is a member of that this user is online or away;
    /// returns how many groups it was sent to. A group that refuses it (this device was
    /// removed meanwhile) is skipped; a network failure stops it.
    pub async fn send_presence(&mut self, presence: Presence) -> Result<usize> {
        let lock = self.begin().await?;
        let result = self.send_presence_locked(&lock, presence).await;
        self.end(lock, result)
    }

    async fn send_presence_locked(&mut self, lock: &StoreLock, presence: Presence) -> Result<usize> {
        let groups = self.member_groups();
        let mut sent = 0;
        for group_id in groups {
            match self
                .send_signal(lock, &group_id, &Envelope::Presence { presence })
                .await
            {
                Ok(()) => sent += 1,
                Err(MessengerError::Api(e)) if !matches!(e, Error::Api { .. }) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(sent)
    }

    async fn send_signal(&mut self, lock: &StoreLock, group_id: &GroupId, envelope: &Envelope) -> Result<()> {
        self.prepare_online(lock).await?;
        let expires_at = OffsetDateTime::now_utc().checked_add(SIGNAL_LIFETIME);
        self.send_envelope(lock, group_id, envelope, expires_at).await?;
        self.save(lock)
    }

    /// The members of the group who were verified and whose devices changed since
    /// (checked now), and whose change the user did not accept.
    pub(crate) fn changed_contacts_in(&mut self, group_id: &GroupId) -> Result<Vec<UserId>> {
        self.check_verified_contacts()?;
        let group = self.active_group(group_id)?;
        let mut users: Vec<UserId> = super::groups::members_of(&group)
            .into_iter()
            .map(|m| m.user_id)
            .filter(|u| self.state.contacts.get(u).is_some_and(|c| c.changed))
            .collect();
        users.dedup();
        Ok(users)
    }

    /// Encrypts and submits one envelope.
    pub(crate) async fn send_envelope(
        &mut self,
        lock: &StoreLock,
        group_id: &GroupId,
        envelope: &Envelope,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Accepted> {
        let plaintext = envelope.to_bytes();
        for _ in 0..MAX_SEND_ATTEMPTS {
            let mut group = self.active_group(group_id)?;
            let message = group
                .create_message(&self.provider, &self.identity.signer, &plaintext)
                .map_err(mls("encrypting the message"))?;
            let request = SubmitMessageRequest {
                txn_id: new_txn_id(),
                message: encode(&message)?.into(),
                expires_at,
            };
            // The sender ratchet moved on: saved before the ciphertext leaves.
            self.save(lock)?;
            match self.submit_message(group_id, &request).await {
                Ok(accepted) => return Ok(accepted),
                Err(err) if err.code() == Some(ErrorCode::WrongEpoch) => {
                    self.catch_up(lock, group_id, current_epoch(&err)).await?;
                }
                // A device of the group was revoked: nothing more goes to an epoch it can
                // read. Remove it, then send again.
                Err(err) if err.code() == Some(ErrorCode::MemberRevoked) => {
                    if self.remove_revoked_devices(lock, group_id).await? == 0 {
                        // Another member removed it meanwhile, or the directory is not
                        // up to date yet: catch up and try again.
                        self.catch_up(lock, group_id, None).await?;
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(MessengerError::Contention {
            group: group_id.clone(),
            attempts: MAX_SEND_ATTEMPTS,
        })
    }

    /// Submits, resubmitting with the same transaction id after a network failure.
    async fn submit_message(&self, group_id: &GroupId, request: &SubmitMessageRequest) -> Result<Accepted, Error> {
        let mut failures = 0;
        loop {
            match self.client.submit_message(group_id, request).await {
                Err(Error::Transport { .. }) if failures < NETWORK_RETRIES => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(500) * failures).await;
                }
                other => return other,
            }
        }
    }
}

/// A text too long for one message is refused before anything is sent.
pub(crate) fn check_text_length(text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(MessengerError::TextTooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(())
}
