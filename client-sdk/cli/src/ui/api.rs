//! The bodies of the local API (`specs/local-ui-api.md`): requests, responses and event
//! frames. The web app's TypeScript types are generated from these (see `typescript.rs`),
//! so the two sides cannot drift apart.
//!
//! Identifiers are the contract's types on the Rust side and strings in TypeScript; times
//! are RFC 3339 strings.

use parley_sdk::messenger::DeviceKey;
use parley_specs::groups_api::{GroupMember, ServerDelivery};
use parley_specs::{DeviceId, GroupId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

// ---------------------------------------------------------------------------------------
// Requests

/// `POST /api/register` and `POST /api/login`.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct SignInRequest {
    /// The homeserver's URL, `https://…`.
    pub server: String,
    pub username: String,
    pub password: String,
    /// Seals the new device's store (at least 12 characters).
    pub passphrase: String,
    /// The CA certificate (PEM) of a private or development homeserver.
    #[serde(default)]
    #[ts(optional)]
    pub ca_pem: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub device_name: Option<String>,
    /// For `register`, when the server requires one.
    #[serde(default)]
    #[ts(optional)]
    pub invite_token: Option<String>,
    /// For `login` to an account with a second factor: the current code of its
    /// authenticator app, or one of its recovery codes (asked for after the homeserver
    /// answers `second_factor_required`).
    #[serde(default)]
    #[ts(optional)]
    pub second_factor: Option<String>,
}

/// `POST /api/2fa/confirm`.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct ConfirmSecondFactorRequest {
    /// A current code of the authenticator app.
    pub code: String,
}

/// `POST /api/2fa/disable`.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct DisableSecondFactorRequest {
    pub password: String,
    /// A current code or a recovery code.
    pub code: String,
}

/// `POST /api/unlock`.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct UnlockRequest {
    pub passphrase: String,
}

/// `POST /api/conversations`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct CreateConversationRequest {
    /// Users to add: `bob@b.example`, or `bob` on this user's server.
    #[serde(default)]
    #[ts(as = "Option<_>", optional)]
    pub members: Vec<String>,
}

/// `POST /api/conversations/{group_id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct AddMembersRequest {
    /// `bob@b.example`, or `bob` on this user's server.
    pub users: Vec<String>,
}

/// `POST /api/conversations/{group_id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SendMessageRequest {
    pub text: String,
    /// Sends it as a reply to this message of the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reply_to: Option<i64>,
}

/// `POST /api/conversations/{group_id}/messages/{seq}/reactions`: adds this user's
/// reaction, or takes it back when it is there.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ReactRequest {
    pub emoji: String,
}

/// `PUT /api/conversations/{group_id}/messages/{seq}`: a new text for an own message.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct EditMessageRequest {
    pub text: String,
}

/// The query of `DELETE /api/conversations/{group_id}/messages/{seq}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeleteMessageQuery {
    /// Delete an own message from every member's history, not only this device's.
    #[serde(default)]
    pub for_everyone: bool,
}

/// `PUT /api/conversations/{group_id}/timer`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SetTimerRequest {
    /// Later messages from this device disappear after this long; `null` for never.
    pub timer_secs: Option<u64>,
}

/// `POST /api/conversations/{group_id}/read`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct MarkReadRequest {
    /// The last message read.
    pub up_to: i64,
}

/// `POST /api/conversations/{group_id}/typing`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct TypingRequest {
    pub typing: bool,
}

/// `POST /api/presence`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct PresenceRequest {
    pub presence: Presence,
}

/// The query of `GET /api/conversations/{group_id}/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MessagesQuery {
    /// Only messages containing this (case-insensitive).
    #[serde(default)]
    pub search: Option<String>,
}

/// The query of `GET /api/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SearchQuery {
    /// The word to find.
    #[serde(default)]
    pub q: Option<String>,
    /// Another name for `q`.
    #[serde(default)]
    pub search: Option<String>,
}

/// The query of `GET /api/conversations/{group_id}/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    pub format: ExportFileFormat,
}

/// What `GET /api/conversations/{group_id}/export` makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFileFormat {
    /// One line per message.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

// ---------------------------------------------------------------------------------------
// Responses

/// The answer of calls that return nothing: `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, TS)]
pub struct Empty {}

/// An error: `{"error": "<code>", "message": "<plain words>"}`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ErrorBody {
    /// `bad_secret`, `not_signed_in`, `invalid_input`, … or a homeserver's code.
    pub error: String,
    /// Meant for people.
    pub message: String,
}

/// `GET /api/session`; also the answer of sign-in and unlock.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SessionStatus {
    /// Signed in with the sealed store open.
    pub signed_in: bool,
    /// The profile has a session but its sealed store waits for the passphrase
    /// (`POST /api/unlock`).
    pub locked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>", optional)]
    pub user_id: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(as = "Option<String>", optional)]
    pub device_id: Option<DeviceId>,
    /// The homeserver's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub server: Option<String>,
}

/// Whether this user compared a contact's safety number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum VerificationState {
    Unverified,
    Verified,
    /// Verified once, but the contact's devices changed since.
    Changed,
}

/// A member device of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Member {
    #[ts(as = "String")]
    pub user_id: UserId,
    #[ts(as = "String")]
    pub device_id: DeviceId,
    pub this_device: bool,
    pub verification: VerificationState,
}

/// One device of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct DeviceRef {
    #[ts(as = "String")]
    pub user_id: UserId,
    #[ts(as = "String")]
    pub device_id: DeviceId,
}

impl From<GroupMember> for DeviceRef {
    fn from(member: GroupMember) -> Self {
        Self {
            user_id: member.user_id,
            device_id: member.device_id,
        }
    }
}

/// Whether one member server has stored an own message.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ServerReceived {
    #[ts(as = "String")]
    pub server: ServerName,
    pub delivered: bool,
}

/// How far one member server has stored a conversation: every message up to
/// `delivered_up_to`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ServerPosition {
    #[ts(as = "String")]
    pub server: ServerName,
    pub delivered_up_to: i64,
}

impl From<ServerDelivery> for ServerPosition {
    fn from(delivery: ServerDelivery) -> Self {
        Self {
            server: delivery.server,
            delivered_up_to: delivery.delivered_up_to,
        }
    }
}

/// `sent` once the hub accepted the message, `delivered` when every other member device
/// acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
}

/// A message's delivery.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Delivery {
    pub state: DeliveryState,
    /// The devices that acknowledged it (own messages).
    pub delivered_to: Vec<DeviceRef>,
    /// How many other member devices the conversation has.
    pub devices: usize,
    /// Own messages only: each member server and whether it has stored the message
    /// (`[]` until the hub first answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub servers: Option<Vec<ServerReceived>>,
}

/// A message of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Message {
    /// The hub's sequence number: the conversation's order.
    pub seq: i64,
    #[ts(as = "String")]
    pub sender: UserId,
    #[ts(as = "String")]
    pub sender_device: DeviceId,
    /// Sent by this user (from any of their devices).
    pub mine: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[ts(as = "String")]
    pub sent_at: OffsetDateTime,
    pub text: String,
    /// A disappearing message is deleted everywhere at this time.
    #[serde(with = "time::serde::rfc3339::option")]
    #[ts(as = "Option<String>")]
    pub expires_at: Option<OffsetDateTime>,
    pub delivery: Delivery,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub reply_to: Option<i64>,
    /// Reactions, most used first.
    pub reactions: Vec<Reaction>,
    /// When its sender last edited it (`null`: never).
    #[serde(with = "time::serde::rfc3339::option")]
    #[ts(as = "Option<String>")]
    pub edited_at: Option<OffsetDateTime>,
    /// An encrypted file sent with the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub attachment: Option<Attachment>,
}

/// One emoji on a message and who reacted with it.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Reaction {
    pub emoji: String,
    pub count: usize,
    /// This user is among them.
    pub mine: bool,
    #[ts(as = "Vec<String>")]
    pub users: Vec<UserId>,
}

/// A message's file, as the web app shows it (its key stays in the local process).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Attachment {
    pub name: String,
    /// Bytes.
    pub size: u64,
    pub media_type: String,
}

/// Query of `POST /api/conversations/{group_id}/files`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SendFileQuery {
    /// The file's name.
    pub name: String,
    /// Text sent with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub text: Option<String>,
}

/// How a conversation is encrypted.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Encryption {
    /// `MLS`.
    pub protocol: String,
    pub ciphersuite: String,
    /// The MLS epoch this device is at (`null` once removed).
    pub epoch: Option<u64>,
    /// Every other member's user is verified.
    pub all_verified: bool,
    /// Verified users whose devices changed since.
    #[ts(as = "Vec<String>")]
    pub changed_contacts: Vec<UserId>,
}

/// A conversation on this device.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Conversation {
    #[ts(as = "String")]
    pub group_id: GroupId,
    /// Whether this device is still a member.
    pub member: bool,
    /// The MLS epoch this device is at (`null` once removed).
    pub epoch: Option<u64>,
    /// The member devices (none once removed).
    pub members: Vec<Member>,
    /// Messages of others not marked read.
    pub unread: usize,
    pub last_message: Option<Message>,
    /// The disappearing-message timer of messages sent from this device.
    pub timer_secs: Option<u64>,
    pub encryption: Encryption,
    /// Set when this device refused a change to the conversation that put a device its
    /// owner's server does not vouch for in it: it takes no further messages. Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub refused: Option<String>,
    /// The group's name, topic and roles (absent once removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub settings: Option<Box<GroupSettingsView>>,
}

/// A group's name, topic and admins (encrypted in the group: servers never see them).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct GroupSettingsView {
    /// The name ("" when none).
    pub name: String,
    /// The topic ("" when none).
    pub topic: String,
    /// Whether this device can read the name and topic.
    pub name_known: bool,
    /// The group's disappearing timer in seconds, for every member (`null`: off).
    pub timer_secs: Option<u64>,
    /// The admins' user ids; empty for a group made without roles.
    pub admins: Vec<String>,
    /// Whether this user is an admin (may rename, set the topic, add, remove, promote).
    pub is_admin: bool,
}

/// `PUT /api/conversations/{group_id}/settings`: what to change (absent: unchanged).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct UpdateSettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub topic: Option<String>,
    /// The group's disappearing timer in seconds; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub timer_secs: Option<u64>,
}

/// `POST /api/conversations/{group_id}/admins`: promote (`admin: true`) or demote a member.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SetAdminRequest {
    /// `bob` (on this user's server) or `bob@chat.example.org`.
    pub user: String,
    pub admin: bool,
}

/// One device's signature key.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct ContactDevice {
    #[ts(as = "String")]
    pub device_id: DeviceId,
    /// Ed25519, hex.
    pub signature_key: String,
}

impl From<&DeviceKey> for ContactDevice {
    fn from(key: &DeviceKey) -> Self {
        Self {
            device_id: key.device_id.clone(),
            signature_key: key.signature_key.clone(),
        }
    }
}

/// A leaf this device refused: the device it claims to be, and why.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RefusedLeafView {
    pub leaf_index: u32,
    /// The device its credential claims to be (absent when it names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub claims: Option<DeviceRef>,
    /// Ed25519, hex.
    pub signature_key: String,
    pub reason: String,
}

/// A contact's safety number with this user, and whether they were verified.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Contact {
    #[ts(as = "String")]
    pub user_id: UserId,
    /// 12 groups of 5 digits.
    pub safety_number: String,
    pub verification: VerificationState,
    /// The contact's devices the number covers.
    pub devices: Vec<ContactDevice>,
    /// Devices seen now that were not verified (when `changed`).
    pub added: Vec<ContactDevice>,
    /// Verified devices no longer seen (when `changed`).
    pub removed: Vec<ContactDevice>,
}

/// A device of this account (`GET /api/devices`).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct Device {
    #[ts(as = "String")]
    pub device_id: DeviceId,
    pub display_name: String,
    pub this_device: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[ts(as = "String")]
    pub last_seen_at: OffsetDateTime,
}

/// The key backup (`GET /api/backup`): whether this device backs up, and what the
/// account's backup takes on its server.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct BackupStatusView {
    pub enabled: bool,
    /// `recovery_key` or `passphrase`, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub key_kind: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[ts(optional, as = "Option<String>")]
    pub last_backup_at: Option<OffsetDateTime>,
    pub chunks: usize,
    pub used_bytes: i64,
    pub quota_bytes: i64,
    pub pending_changes: bool,
}

/// `POST /api/backup`: the backup is on; its recovery key, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct BackupEnabled {
    pub recovery_key: String,
    pub status: BackupStatusView,
}

/// `POST /api/restore`.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct RestoreRequest {
    /// The recovery key (or the backup's passphrase).
    pub recovery_key: String,
}

/// What `POST /api/restore` did.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct RestoreResult {
    pub conversations: usize,
    pub messages_added: usize,
    /// Chunks an earlier, interrupted restore had done already.
    pub resumed: usize,
    /// Conversations this device joined afterwards.
    pub joined: usize,
}

/// A message found by `GET /api/search`.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SearchHit {
    #[ts(as = "String")]
    pub group_id: GroupId,
    pub message: Message,
}

/// Whether a window of a user's client is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Away,
}

impl From<Presence> for parley_sdk::messenger::Presence {
    fn from(presence: Presence) -> Self {
        match presence {
            Presence::Online => Self::Online,
            Presence::Away => Self::Away,
        }
    }
}

impl From<parley_sdk::messenger::Presence> for Presence {
    fn from(presence: parley_sdk::messenger::Presence) -> Self {
        match presence {
            parley_sdk::messenger::Presence::Online => Self::Online,
            parley_sdk::messenger::Presence::Away => Self::Away,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Events

/// Whether the first sync (or a large group's) is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    Syncing,
    Idle,
}

/// Whether the homeserver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Online,
    Unreachable,
}

/// One frame of the event WebSocket (`GET /api/events`).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServerEvent {
    /// A message arrived or was sent (from any tab: deduplicate by `seq`).
    Message {
        #[ts(as = "String")]
        group_id: GroupId,
        message: Message,
    },
    /// A message already in the conversation changed: a reaction, or an edit by its sender
    /// (from any tab or member). Replace it by `seq`; it is not new (no unread count).
    MessageChanged {
        #[ts(as = "String")]
        group_id: GroupId,
        message: Message,
    },
    /// WARNING: a member sent an edit or delete of a message that is not theirs (or a
    /// reaction breaking the rules); this device refused it. `message` says it in words.
    ActionRefused {
        #[ts(as = "String")]
        group_id: GroupId,
        message: String,
    },
    /// WARNING from key transparency: a device of this account appeared that this device
    /// did not know of, or a check of the account's key history failed. `message` says
    /// it in words (with the epoch and time the device was published).
    SecurityAlert { message: String },
    /// A message was deleted from this device (by hand, it expired, or its sender deleted
    /// it for everyone).
    MessageDeleted {
        #[ts(as = "String")]
        group_id: GroupId,
        seq: i64,
    },
    /// A device acknowledged an own message.
    Delivered {
        #[ts(as = "String")]
        group_id: GroupId,
        seq: i64,
        to: DeviceRef,
    },
    /// How far each member server has stored the conversation.
    Delivery {
        #[ts(as = "String")]
        group_id: GroupId,
        servers: Vec<ServerPosition>,
    },
    /// A conversation was created or joined, its members or epoch changed, or this
    /// device was removed.
    Conversation { conversation: Conversation },
    /// Cleared by the web app after 6 s without a refresh.
    Typing {
        #[ts(as = "String")]
        group_id: GroupId,
        #[ts(as = "String")]
        user_id: UserId,
        typing: bool,
    },
    Presence {
        #[ts(as = "String")]
        user_id: UserId,
        presence: Presence,
    },
    /// WARNING: a verified contact's devices changed; sending to them is blocked until
    /// acknowledged.
    VerifiedContactChanged {
        #[ts(as = "String")]
        user_id: UserId,
        added: Vec<ContactDevice>,
        removed: Vec<ContactDevice>,
    },
    /// WARNING: a Welcome or a commit put devices in a conversation that their own
    /// servers do not vouch for; this device refused it (a Welcome: not joined; a commit:
    /// the conversation is closed here). `message` says it in words.
    LeafRefused {
        #[ts(as = "String")]
        group_id: GroupId,
        /// `welcome` or `commit`.
        source: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        by: Option<DeviceRef>,
        leaves: Vec<RefusedLeafView>,
        message: String,
    },
    Sync {
        state: SyncState,
        /// Left to process, when known (not sent yet).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        pending: Option<usize>,
    },
    /// A restore (`POST /api/restore`) is under way: chunks done of all.
    Restore { done: usize, total: usize },
    /// The homeserver's state; the first frame of every stream.
    Connection {
        state: ConnectionState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        message: Option<String>,
    },
}

/// `GET /api/2fa`: the account's second factor.
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
pub struct SecondFactorState {
    pub enabled: bool,
    /// An enrolment waits for its confirming code.
    pub pending: bool,
    pub recovery_codes_left: i64,
}

/// `POST /api/2fa/enroll`: the secret to put in an authenticator app, shown once.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct SecondFactorEnrollmentView {
    /// Base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code: an SVG document made by the local process.
    pub qr_svg: String,
}

/// `POST /api/2fa/confirm`: single-use codes, shown once.
#[derive(Clone, Serialize, Deserialize, TS)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}
