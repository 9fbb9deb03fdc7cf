//! What receiving did: the events [`Messenger::sync`](super::Messenger::sync) and
//! [`Messenger::receive`](super::Messenger::receive) report.

use parley_specs::groups_api::GroupMember;
use parley_specs::{GroupId, ServerName, UserId};
use serde::Serialize;

use super::directory::RefusedLeaf;
use super::envelope::Presence;
use super::history::HistoryMessage;
use super::safety::DeviceKey;

/// One thing that happened, in inbox order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A text message arrived (it is in the history).
    Message {
        /// The conversation.
        group_id: GroupId,
        /// The message.
        message: HistoryMessage,
    },
    /// A message in the history changed: a reaction was added or taken back, or its
    /// sender edited it. `message` is the message as it is now.
    MessageChanged {
        /// The conversation.
        group_id: GroupId,
        /// The message changed.
        message: HistoryMessage,
        /// Who changed it.
        by: UserId,
    },
    /// The sender of a message deleted it for everyone: it is gone from this device's
    /// history.
    DeletedForEveryone {
        /// The conversation.
        group_id: GroupId,
        /// The message deleted.
        seq: i64,
        /// Who deleted it.
        by: UserId,
    },
    /// A member sent an edit or a delete-for-everyone of a message it may not change (not
    /// its own), or a reaction that breaks the rules; it was not applied.
    ActionRefused {
        /// The conversation.
        group_id: GroupId,
        /// The hub's sequence number of the refused message.
        seq: i64,
        /// Who sent it.
        by: UserId,
        /// Why it was refused.
        reason: String,
    },
    /// This device was added to a group.
    Joined {
        /// The conversation.
        group_id: GroupId,
        /// Who added it.
        added_by: Option<UserId>,
        /// The members, this device included.
        members: Vec<GroupMember>,
    },
    /// Devices were added to or removed from a group.
    MembersChanged {
        /// The conversation.
        group_id: GroupId,
        /// Who committed the change.
        by: Option<UserId>,
        /// Devices added.
        added: Vec<GroupMember>,
        /// Devices removed.
        removed: Vec<GroupMember>,
    },
    /// An admin changed a group's name, topic or admins (or the admin role passed on).
    SettingsChanged {
        /// The conversation.
        group_id: GroupId,
        /// Who committed the change.
        by: Option<UserId>,
        /// The group's name, topic and admins afterwards.
        settings: super::GroupSettings,
    },
    /// A member user added a device of theirs to a group by themselves (an external
    /// join: "alice added a device"). For a verified contact a
    /// [`Event::VerifiedContactChanged`] warning follows.
    DeviceAdded {
        /// The conversation.
        group_id: GroupId,
        /// The user, who had a device in the group already.
        user: UserId,
        /// The new device.
        device: GroupMember,
    },
    /// A device of this account appeared in its server's key directory that this device
    /// did not know of: one the user logged in elsewhere, or one their server added
    /// behind their back (`parley devices audit`).
    UnknownOwnDevice {
        /// The device, the epoch and the time it was published.
        alert: super::DeviceAlert,
    },
    /// A key transparency check of this account failed: its server's key history proof
    /// does not verify, or its root is badly signed or older than one seen before.
    TransparencyFailed {
        /// The server.
        server: ServerName,
        /// Why.
        reason: String,
    },
    /// This device could not join a conversation of its user (see
    /// [`Messenger::join_own_conversations`](super::Messenger::join_own_conversations)).
    JoinFailed {
        /// The conversation.
        group_id: GroupId,
        /// Why.
        reason: String,
    },
    /// This device was removed from a group; its history stays readable.
    Removed {
        /// The conversation.
        group_id: GroupId,
        /// Who removed it.
        by: Option<UserId>,
    },
    /// A member announced that their user leaves the group; this device removes the
    /// user's devices (unless another member does first).
    LeaveAnnounced {
        /// The conversation.
        group_id: GroupId,
        /// Who leaves.
        user: UserId,
    },
    /// A device acknowledged receiving a message of this account.
    Delivered {
        /// The conversation.
        group_id: GroupId,
        /// The message.
        seq: i64,
        /// The device that received it.
        to: GroupMember,
    },
    /// WARNING: a verified contact's devices differ from the ones verified. Compare
    /// safety numbers again before trusting them.
    VerifiedContactChanged {
        /// The contact.
        user: UserId,
        /// Devices that were not verified.
        added: Vec<DeviceKey>,
        /// Verified devices that are gone.
        removed: Vec<DeviceKey>,
    },
    /// A member is typing, or stopped (not kept; a client clears it after a few seconds
    /// without a refresh). Also from this user's other devices, never this device's own.
    Typing {
        /// The conversation.
        group_id: GroupId,
        /// Who.
        user: UserId,
        /// Whether they are typing.
        typing: bool,
    },
    /// A member announced their presence (not kept).
    Presence {
        /// Who.
        user: UserId,
        /// Online or away.
        presence: Presence,
    },
    /// A disappearing message expired and was deleted from this device.
    Expired {
        /// The conversation.
        group_id: GroupId,
        /// The message.
        seq: i64,
    },
    /// WARNING: a Welcome or a commit put leaves in the group that the device key
    /// directory does not vouch for (a device whose own homeserver lists another key, no
    /// such device, a second leaf of one device). It was refused: a Welcome is not joined;
    /// a commit is not applied and the conversation takes no further messages (see
    /// [`MessengerError::ConversationRefused`](super::MessengerError::ConversationRefused)).
    LeafRefused {
        /// The conversation.
        group_id: GroupId,
        /// The hub's sequence number of the commit (or of the Welcome's entry).
        seq: i64,
        /// What carried the leaves.
        source: LeafSource,
        /// The member that sent the Welcome or the commit, as its credential names it.
        by: Option<GroupMember>,
        /// The leaves refused, each with the device it claims to be and why.
        leaves: Vec<RefusedLeaf>,
    },
    /// The server dropped inbox entries of this device before it read them: it was
    /// offline longer than the server keeps an idle device's inbox, or the messages
    /// outlived the server's longest retention. Those messages are lost to this device;
    /// conversations whose commits were among them may need this device re-added.
    MissedMessages {
        /// How many messages and Welcomes were dropped.
        count: i64,
    },
    /// An inbox entry could not be used (it is acknowledged anyway, so it does not block
    /// the inbox).
    Undecryptable {
        /// The conversation.
        group_id: GroupId,
        /// The hub's sequence number.
        seq: i64,
        /// Why.
        reason: String,
    },
}

/// What carried leaves this device refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeafSource {
    /// A Welcome: the group was not joined.
    Welcome,
    /// A commit: it was not applied, and the conversation is closed on this device.
    Commit,
}
