//! Bodies of groups (ordered by their hub) and device inboxes.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bytes::Base64Bytes;
use crate::ids::{DeviceId, GroupId, ServerName, UserId};

/// Longest a client-chosen transaction id may be.
pub const MAX_TXN_ID_LEN: usize = 64;
/// Longest a long-poll of the inbox may wait.
pub const MAX_INBOX_TIMEOUT_MS: u64 = 30_000;
pub const MAX_INBOX_LIMIT: u32 = 500;

/// Registers a new MLS group with this server as its hub. The group's MLS group id must
/// be the UTF-8 of a `GroupId` naming this server, its epoch 0 and its only member the
/// calling device.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// An MLSMessage carrying the group's GroupInfo, signed by the creator.
    pub group_info: Base64Bytes,
    /// The TLS-serialized ratchet tree.
    pub ratchet_tree: Base64Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupMember {
    pub user_id: UserId,
    pub device_id: DeviceId,
}

/// The hub's public view of a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group_id: GroupId,
    pub epoch: u64,
    /// Sequence number of the group's latest message, 0 before the first.
    pub last_seq: i64,
    pub members: Vec<GroupMember>,
}

/// The answer to `POST /client/v1/groups/{group_id}/leave` (and its federation twin):
/// the users whose leave the hub holds until a commit removes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeftGroup {
    pub group_id: GroupId,
    pub leaving: Vec<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupSummary>,
}

/// Query of `GET /client/v1/groups`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupListQuery {
    /// `device` (the default): the groups this device is a member of. `user`: the groups
    /// in which another device of this device's user is a member and this device is not
    /// (the ones it can join by external commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<GroupListOf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupListOf {
    Device,
    User,
}

/// A commit (as a PublicMessage) for the group's current epoch, with the Welcome for the
/// members it adds and the GroupInfo of the epoch it creates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitCommitRequest {
    /// Chosen by the client; a retry with the same id returns the first answer.
    pub txn_id: String,
    pub commit: Base64Bytes,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub welcome: Option<Base64Bytes>,
    /// An MLSMessage carrying the GroupInfo of the epoch this commit creates, signed by
    /// the committer, without the ratchet-tree extension (the hub serves its own tree),
    /// with the external-pub extension (so that a user's new device can join by external
    /// commit). The hub checks that it describes the group as the commit leaves it.
    pub group_info: Base64Bytes,
}

/// Answer of `GET /client/v1/groups/{group_id}/group-info` (and of the federation
/// endpoint of the same name): what a device needs to join the group's current epoch by
/// external commit, or to join from a Welcome without the ratchet-tree extension.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInfoResponse {
    pub group_id: GroupId,
    pub epoch: u64,
    /// An MLSMessage carrying the GroupInfo of `epoch`, signed by its committer (or the
    /// group's creator), without the ratchet-tree extension.
    pub group_info: Base64Bytes,
    /// The TLS-serialized ratchet tree of `epoch`, as the hub's public state has it.
    pub ratchet_tree: Base64Bytes,
}

/// An application message (a PrivateMessage).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitMessageRequest {
    pub txn_id: String,
    pub message: Base64Bytes,
    /// Disappearing message: every server deletes it at this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "time::serde::rfc3339::option::serialize",
        deserialize_with = "crate::optional::rfc3339"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// The hub accepted the message as number `seq` of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub group_id: GroupId,
    pub seq: i64,
    /// The group's epoch after the message (a commit advances it).
    pub epoch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxEntryKind {
    /// A commit or application message of a group the device is in.
    Message,
    /// A Welcome adding this device to a group.
    Welcome,
    /// A device of `sender` received message `seq` of the group.
    Receipt,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Position in this device's inbox; read `after` it, acknowledge `up_to` it.
    pub cursor: i64,
    pub kind: InboxEntryKind,
    pub group_id: GroupId,
    pub seq: i64,
    pub epoch: u64,
    /// Who sent the message; for a receipt, the device that received it.
    pub sender: GroupMember,
    /// The MLS message or Welcome; absent for receipts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Base64Bytes>,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// Query of `GET /client/v1/inbox`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Entries after this cursor (default 0: from the oldest unacknowledged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many entries (default 100, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// With nothing to return, wait up to this long for an entry (at most 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboxPage {
    pub entries: Vec<InboxEntry>,
    /// Pass as `after` next time; equals `after` when there was nothing new (or, with
    /// `missed`, `missed.through` when nothing newer is left).
    pub next_cursor: i64,
    /// Set when the server's retention dropped entries after `after` before this device
    /// read them (it was idle too long, or the messages outlived the server's longest
    /// retention): those messages are lost to this device. Reported until the device
    /// acknowledges up to `through` or past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedEntries>,
}

/// Inbox entries the server dropped unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedEntries {
    /// The highest cursor dropped: every entry up to it is gone.
    pub through: i64,
    /// How many messages and Welcomes were dropped (receipts are not counted).
    pub count: i64,
}

/// Query of the inbox WebSocket: push entries after this cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    #[serde(default)]
    pub after: i64,
}

/// Deletes this device's inbox entries up to and including `up_to`. Also accepted as a
/// text frame on the inbox WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    #[serde(deserialize_with = "crate::ints::i64")]
    pub up_to: i64,
}

/// How far one server with members in a group has stored its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerDelivery {
    pub server: ServerName,
    /// The highest sequence number that server has stored: every message of the group up
    /// to it has reached the server (0 before the first).
    pub delivered_up_to: i64,
}

/// Answer of `GET /client/v1/groups/{group_id}/delivery`: what each server with members
/// in the group (the hub's own included) has received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDelivery {
    pub group_id: GroupId,
    /// Sorted by server name.
    pub servers: Vec<ServerDelivery>,
    /// True when the group's hub could not be asked: `servers` then holds only what the
    /// answering server knows (its own position).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}
