//! Reading and deleting the local history: list, search, export, delete a message,
//! clear a conversation.

use std::time::Duration;

use parley_specs::GroupId;
use time::OffsetDateTime;

use super::error::MessengerError;
use super::history::{Conversation, ExportFormat, HistoryMessage, export};
use super::{Messenger, Result};

impl Messenger {
    /// The conversation's messages in the hub's order; with `search`, only those whose
    /// text contains it (case-insensitive). Expired messages are never returned.
    pub async fn history(&mut self, group_id: &GroupId, search: Option<&str>) -> Result<Vec<HistoryMessage>> {
        let lock = self.begin().await?;
        let result = self
            .conversation(group_id)
            .map(|c| c.messages(search, OffsetDateTime::now_utc()));
        self.end(lock, result)
    }

    /// Messages containing `word` (case-insensitive) in every conversation.
    pub async fn search(&mut self, word: &str) -> Result<Vec<(GroupId, HistoryMessage)>> {
        let lock = self.begin().await?;
        let now = OffsetDateTime::now_utc();
        let found = self
            .state
            .conversations
            .iter()
            .flat_map(|(id, c)| c.messages(Some(word), now).into_iter().map(move |m| (id.clone(), m)))
            .collect();
        self.end(lock, Ok(found))
    }

    /// The conversation as JSON or text (see [`ExportFormat`]).
    pub async fn export(&mut self, group_id: &GroupId, format: ExportFormat) -> Result<String> {
        let lock = self.begin().await?;
        let now = OffsetDateTime::now_utc();
        let result = self.conversation(group_id).and_then(|c| {
            export(group_id, &self.state.user_id, &c.messages(None, now), format, now)
                .map_err(|e| MessengerError::store(self.store.path(), format!("cannot encode the export: {e}")))
        });
        self.end(lock, result)
    }

    /// Deletes one message from this device's history for real: the store is rewritten
    /// without it. Other devices keep their copies.
    pub async fn delete_message(&mut self, group_id: &GroupId, seq: i64) -> Result<()> {
        let lock = self.begin().await?;
        let result = match self.state.conversations.get_mut(group_id).map(|c| c.delete(seq)) {
            None => Err(MessengerError::UnknownGroup(group_id.clone())),
            Some(false) => Err(MessengerError::UnknownMessage {
                group: group_id.clone(),
                seq,
            }),
            Some(true) => self.save(&lock),
        };
        self.end(lock, result)
    }

    /// Deletes every message of a conversation from this device, staying in the group
    /// (new messages keep arriving); returns how many were deleted. To leave as well,
    /// see [`Messenger::leave_group`].
    pub async fn clear_history(&mut self, group_id: &GroupId) -> Result<usize> {
        let lock = self.begin().await?;
        let result = match self.state.conversations.get_mut(group_id) {
            None => Err(MessengerError::UnknownGroup(group_id.clone())),
            Some(c) => {
                let deleted = std::mem::take(&mut c.messages).len();
                self.save(&lock).map(|()| deleted)
            }
        };
        self.end(lock, result)
    }

    /// Sets the conversation's disappearing-message timer on this device: later messages
    /// sent from here without an explicit expiry disappear after `timer` (whole seconds).
    /// `None` turns it off.
    pub async fn set_timer(&mut self, group_id: &GroupId, timer: Option<Duration>) -> Result<()> {
        let lock = self.begin().await?;
        let result = match self.state.conversations.get_mut(group_id) {
            None => Err(MessengerError::UnknownGroup(group_id.clone())),
            Some(c) => {
                c.timer_secs = timer.map(|t| t.as_secs().max(1));
                self.save(&lock)
            }
        };
        self.end(lock, result)
    }

    /// Marks the conversation read up to message `seq` (the marker never moves back).
    pub async fn mark_read(&mut self, group_id: &GroupId, seq: i64) -> Result<()> {
        let lock = self.begin().await?;
        let result = match self.state.conversations.get_mut(group_id) {
            None => Err(MessengerError::UnknownGroup(group_id.clone())),
            Some(c) if c.read_up_to >= seq => Ok(()),
            Some(c) => {
                c.read_up_to = seq;
                self.save(&lock)
            }
        };
        self.end(lock, result)
    }

    pub(crate) fn conversation(&self, group_id: &GroupId) -> Result<&Conversation> {
        self.state
            .conversations
            .get(group_id)
            .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))
    }
}
