//! Bodies of the federation API (`/federation/v1`); the key document lives with its
//! verification in the `parley-federation` crate.

use serde::{Deserialize, Serialize};

use crate::groups_api::{GroupMember, SubmitCommitRequest, SubmitMessageRequest};
use crate::{Base64Bytes, GroupId, ServerName, UserId};

/// Answer of `GET /federation/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationVersion {
    /// The server that answered.
    pub server_name: ServerName,
    /// Its software version.
    pub version: String,
    /// The origin it authenticated the request as.
    pub origin: ServerName,
}

/// `GET /.well-known/parley/server`: where the federation API of the server named by
/// the host serving it listens (port 8448 when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WellKnownServer {
    pub server: String,
}

/// A commit a follower forwards to the hub for a device of one of its users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedCommit {
    pub sender: GroupMember,
    pub commit: SubmitCommitRequest,
}

/// A leave a follower forwards to the hub for a device of one of its users.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedLeave {
    pub sender: GroupMember,
}

/// An application message a follower forwards to the hub for one of its users' devices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedMessage {
    pub sender: GroupMember,
    pub message: SubmitMessageRequest,
}

/// Body of `POST /federation/v1/groups/{group_id}/group-info`: the origin asks for a
/// device of its user `user_id`, who must have a member device in the group. The answer
/// is a `groups_api::GroupInfoResponse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInfoRequest {
    pub user_id: UserId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderedKind {
    Commit,
    Application,
}

/// A message as the hub ordered it. Times are milliseconds since the Unix epoch so that
/// the signed bytes do not depend on how a timestamp is formatted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderedMessage {
    pub group_id: GroupId,
    #[serde(deserialize_with = "crate::ints::i64")]
    pub seq: i64,
    /// The epoch the message was sent in (a commit moves the group to the next one).
    #[serde(deserialize_with = "crate::ints::u64")]
    pub epoch: u64,
    pub kind: OrderedKind,
    pub sender: GroupMember,
    pub payload: Base64Bytes,
    /// With a commit that adds members: their Welcome.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub welcome: Option<Base64Bytes>,
    /// With a commit: every member device of the group after it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::optional::not_null"
    )]
    pub members: Option<Vec<GroupMember>>,
    #[serde(deserialize_with = "crate::ints::i64")]
    pub sent_at_ms: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::ints::option_i64"
    )]
    pub expires_at_ms: Option<i64>,
}

/// The hub's ed25519 signature over the canonical JSON of `{"message": ..., "signed_at_ms": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSignature {
    pub key_id: String,
    #[serde(deserialize_with = "crate::ints::i64")]
    pub signed_at_ms: i64,
    /// Base64 (standard alphabet, unpadded) of the 64-byte signature.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedMessage {
    pub message: OrderedMessage,
    pub hub_signature: HubSignature,
}

/// Body of `PUT /federation/v1/transactions/{txn_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub messages: Vec<SignedMessage>,
}

/// Answer to a transaction: what the follower did with its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionResult {
    /// Messages stored now.
    pub stored: u64,
    /// Messages it had already stored (a retried transaction).
    pub duplicates: u64,
    /// Messages it does not store: of groups in which it has no member devices (per the
    /// hub's group state), or before the commit that added the first of them.
    #[serde(default)]
    pub ignored: u64,
    /// Groups in which it found a gap before a message and will backfill from the hub.
    pub backfilling: Vec<GroupId>,
}

/// Query of the backfill endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillQuery {
    /// Messages with a sequence number above this one.
    pub after: i64,
    /// At most this many (default and maximum: the hub's transaction size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Answer of `GET /federation/v1/groups/{group_id}/delivery`: the hub's view of how far
/// each server with members has stored the group (never `partial`).
pub type FederatedGroupDelivery = crate::groups_api::GroupDelivery;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillPage {
    /// In sequence order; fewer than asked when the group has no more.
    pub messages: Vec<SignedMessage>,
    /// The group's latest sequence number at the hub.
    pub last_seq: i64,
}

/// At most this many receipts in one `POST /federation/v1/receipts`.
pub const MAX_RECEIPTS_PER_REQUEST: usize = 500;

/// One delivery receipt: `receiver` acknowledged message `seq` of `group_id`, which
/// `sender` sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReceipt {
    pub group_id: GroupId,
    #[serde(deserialize_with = "crate::ints::i64")]
    pub seq: i64,
    pub sender: GroupMember,
    pub receiver: GroupMember,
}

/// Body of `POST /federation/v1/receipts`: receipts of devices of the origin for
/// messages sent by users of the destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsRequest {
    pub receipts: Vec<DeliveryReceipt>,
}

/// Answer of `POST /federation/v1/receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsResult {
    /// Receipts that produced inbox entries for the senders' devices.
    pub accepted: u64,
    /// Receipts skipped: message no longer stored (expired), not sent by that device, a
    /// group unknown here or a receiver not in it.
    pub skipped: u64,
    /// Receipts for messages after the last one this server has received from the
    /// group's hub (a receipt can overtake the message it is for): send them again later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early: Vec<DeliveryReceipt>,
}
