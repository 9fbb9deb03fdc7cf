// Generated from client-sdk/cli/src/ui/api.rs by ts-rs: do not edit.
// Regenerate with `PARLEY_UPDATE_TS=1 cargo test -p parley-cli generated_typescript`.

/**
 * `POST /api/register` and `POST /api/login`.
 */
export type SignInRequest = { 
/**
 * The homeserver's URL, `https://…`.
 */
server: string, username: string, password: string, 
/**
 * Seals the new device's store (at least 12 characters).
 */
passphrase: string, 
/**
 * The CA certificate (PEM) of a private or development homeserver.
 */
ca_pem?: string, device_name?: string, 
/**
 * For `register`, when the server requires one.
 */
invite_token?: string, 
/**
 * For `login` to an account with a second factor: the current code of its
 * authenticator app, or one of its recovery codes (asked for after the homeserver
 * answers `second_factor_required`).
 */
second_factor?: string, };

/**
 * `POST /api/2fa/confirm`.
 */
export type ConfirmSecondFactorRequest = { 
/**
 * A current code of the authenticator app.
 */
code: string, };

/**
 * `POST /api/2fa/disable`.
 */
export type DisableSecondFactorRequest = { password: string, 
/**
 * A current code or a recovery code.
 */
code: string, };

/**
 * `POST /api/unlock`.
 */
export type UnlockRequest = { passphrase: string, };

/**
 * `POST /api/conversations`.
 */
export type CreateConversationRequest = { 
/**
 * Users to add: `bob@b.example`, or `bob` on this user's server.
 */
members?: Array<string>, };

/**
 * `POST /api/conversations/{group_id}/members`.
 */
export type AddMembersRequest = { 
/**
 * `bob@b.example`, or `bob` on this user's server.
 */
users: Array<string>, };

/**
 * `POST /api/conversations/{group_id}/messages`.
 */
export type SendMessageRequest = { text: string, 
/**
 * Sends it as a reply to this message of the conversation.
 */
reply_to?: number, };

/**
 * `POST /api/conversations/{group_id}/messages/{seq}/reactions`: adds this user's
 * reaction, or takes it back when it is there.
 */
export type ReactRequest = { emoji: string, };

/**
 * `PUT /api/conversations/{group_id}/messages/{seq}`: a new text for an own message.
 */
export type EditMessageRequest = { text: string, };

/**
 * Query of `POST /api/conversations/{group_id}/files`.
 */
export type SendFileQuery = { 
/**
 * The file's name.
 */
name: string, 
/**
 * Text sent with it.
 */
text?: string, };

/**
 * `PUT /api/conversations/{group_id}/timer`.
 */
export type SetTimerRequest = { 
/**
 * Later messages from this device disappear after this long; `null` for never.
 */
timer_secs: number | null, };

/**
 * `PUT /api/conversations/{group_id}/settings`: what to change (absent: unchanged).
 */
export type UpdateSettingsRequest = { name?: string, topic?: string, 
/**
 * The group's disappearing timer in seconds; 0 turns it off.
 */
timer_secs?: number, };

/**
 * `POST /api/conversations/{group_id}/admins`: promote (`admin: true`) or demote a member.
 */
export type SetAdminRequest = { 
/**
 * `bob` (on this user's server) or `bob@chat.example.org`.
 */
user: string, admin: boolean, };

/**
 * A group's name, topic and admins (encrypted in the group: servers never see them).
 */
export type GroupSettingsView = { 
/**
 * The name ("" when none).
 */
name: string, 
/**
 * The topic ("" when none).
 */
topic: string, 
/**
 * Whether this device can read the name and topic.
 */
name_known: boolean, 
/**
 * The group's disappearing timer in seconds, for every member (`null`: off).
 */
timer_secs: number | null, 
/**
 * The admins' user ids; empty for a group made without roles.
 */
admins: Array<string>, 
/**
 * Whether this user is an admin (may rename, set the topic, add, remove, promote).
 */
is_admin: boolean, };

/**
 * `POST /api/conversations/{group_id}/read`.
 */
export type MarkReadRequest = { 
/**
 * The last message read.
 */
up_to: number, };

/**
 * `POST /api/conversations/{group_id}/typing`.
 */
export type TypingRequest = { typing: boolean, };

/**
 * `POST /api/presence`.
 */
export type PresenceRequest = { presence: Presence, };

/**
 * What `GET /api/conversations/{group_id}/export` makes.
 */
export type ExportFileFormat = "text" | "json";

/**
 * The answer of calls that return nothing: `{}`.
 */
export type Empty = Record<symbol, never>;

/**
 * An error: `{"error": "<code>", "message": "<plain words>"}`.
 */
export type ErrorBody = { 
/**
 * `bad_secret`, `not_signed_in`, `invalid_input`, … or a homeserver's code.
 */
error: string, 
/**
 * Meant for people.
 */
message: string, };

/**
 * `GET /api/session`; also the answer of sign-in and unlock.
 */
export type SessionStatus = { 
/**
 * Signed in with the sealed store open.
 */
signed_in: boolean, 
/**
 * The profile has a session but its sealed store waits for the passphrase
 * (`POST /api/unlock`).
 */
locked: boolean, user_id?: string, device_id?: string, 
/**
 * The homeserver's URL.
 */
server?: string, };

/**
 * Whether this user compared a contact's safety number.
 */
export type VerificationState = "unverified" | "verified" | "changed";

/**
 * A member device of a conversation.
 */
export type Member = { user_id: string, device_id: string, this_device: boolean, verification: VerificationState, };

/**
 * One device of a user.
 */
export type DeviceRef = { user_id: string, device_id: string, };

/**
 * Whether one member server has stored an own message.
 */
export type ServerReceived = { server: string, delivered: boolean, };

/**
 * How far one member server has stored a conversation: every message up to
 * `delivered_up_to`.
 */
export type ServerPosition = { server: string, delivered_up_to: number, };

/**
 * `sent` once the hub accepted the message, `delivered` when every other member device
 * acknowledged it.
 */
export type DeliveryState = "sent" | "delivered";

/**
 * A message's delivery.
 */
export type Delivery = { state: DeliveryState, 
/**
 * The devices that acknowledged it (own messages).
 */
delivered_to: Array<DeviceRef>, 
/**
 * How many other member devices the conversation has.
 */
devices: number, 
/**
 * Own messages only: each member server and whether it has stored the message
 * (`[]` until the hub first answered).
 */
servers?: Array<ServerReceived>, };

/**
 * A message's file, as the web app shows it (its key stays in the local process).
 */
export type Attachment = { name: string, 
/**
 * Bytes.
 */
size: number, media_type: string, };

/**
 * A message of a conversation.
 */
export type Message = { 
/**
 * The hub's sequence number: the conversation's order.
 */
seq: number, sender: string, sender_device: string, 
/**
 * Sent by this user (from any of their devices).
 */
mine: boolean, sent_at: string, text: string, 
/**
 * A disappearing message is deleted everywhere at this time.
 */
expires_at: string | null, delivery: Delivery, 
/**
 * The message this one answers.
 */
reply_to?: number, 
/**
 * Reactions, most used first.
 */
reactions: Array<Reaction>, 
/**
 * When its sender last edited it (`null`: never).
 */
edited_at: string | null, 
/**
 * An encrypted file sent with the message.
 */
attachment?: Attachment, };

/**
 * One emoji on a message and who reacted with it.
 */
export type Reaction = { emoji: string, count: number, 
/**
 * This user is among them.
 */
mine: boolean, users: Array<string>, };

/**
 * How a conversation is encrypted.
 */
export type Encryption = { 
/**
 * `MLS`.
 */
protocol: string, ciphersuite: string, 
/**
 * The MLS epoch this device is at (`null` once removed).
 */
epoch: number | null, 
/**
 * Every other member's user is verified.
 */
all_verified: boolean, 
/**
 * Verified users whose devices changed since.
 */
changed_contacts: Array<string>, };

/**
 * A conversation on this device.
 */
export type Conversation = { group_id: string, 
/**
 * Whether this device is still a member.
 */
member: boolean, 
/**
 * The MLS epoch this device is at (`null` once removed).
 */
epoch: number | null, 
/**
 * The member devices (none once removed).
 */
members: Array<Member>, 
/**
 * Messages of others not marked read.
 */
unread: number, last_message: Message | null, 
/**
 * The disappearing-message timer of messages sent from this device.
 */
timer_secs: number | null, encryption: Encryption, 
/**
 * Set when this device refused a change to the conversation that put a device its
 * owner's server does not vouch for in it: it takes no further messages. Why.
 */
refused?: string, 
/**
 * The group's name, topic and roles (absent once removed).
 */
settings?: GroupSettingsView, };

/**
 * One device's signature key.
 */
export type ContactDevice = { device_id: string, 
/**
 * Ed25519, hex.
 */
signature_key: string, };

/**
 * A leaf this device refused: the device it claims to be, and why.
 */
export type RefusedLeafView = { leaf_index: number, 
/**
 * The device its credential claims to be (absent when it names none).
 */
claims?: DeviceRef, 
/**
 * Ed25519, hex.
 */
signature_key: string, reason: string, };

/**
 * A contact's safety number with this user, and whether they were verified.
 */
export type Contact = { user_id: string, 
/**
 * 12 groups of 5 digits.
 */
safety_number: string, verification: VerificationState, 
/**
 * The contact's devices the number covers.
 */
devices: Array<ContactDevice>, 
/**
 * Devices seen now that were not verified (when `changed`).
 */
added: Array<ContactDevice>, 
/**
 * Verified devices no longer seen (when `changed`).
 */
removed: Array<ContactDevice>, };

/**
 * A device of this account (`GET /api/devices`).
 */
export type Device = { device_id: string, display_name: string, this_device: boolean, last_seen_at: string, };

/**
 * A message found by `GET /api/search`.
 */
export type SearchHit = { group_id: string, message: Message, };

/**
 * The key backup (`GET /api/backup`): whether this device backs up, and what the
 * account's backup takes on its server.
 */
export type BackupStatusView = { enabled: boolean, 
/**
 * `recovery_key` or `passphrase`, when enabled.
 */
key_kind?: string, last_backup_at?: string, chunks: number, used_bytes: number, quota_bytes: number, pending_changes: boolean, };

/**
 * `POST /api/backup`: the backup is on; its recovery key, shown this once.
 */
export type BackupEnabled = { recovery_key: string, status: BackupStatusView, };

/**
 * `POST /api/restore`.
 */
export type RestoreRequest = { 
/**
 * The recovery key (or the backup's passphrase).
 */
recovery_key: string, };

/**
 * What `POST /api/restore` did.
 */
export type RestoreResult = { conversations: number, messages_added: number, 
/**
 * Chunks an earlier, interrupted restore had done already.
 */
resumed: number, 
/**
 * Conversations this device joined afterwards.
 */
joined: number, };

/**
 * Whether a window of a user's client is open.
 */
export type Presence = "online" | "away";

/**
 * Whether the first sync (or a large group's) is under way.
 */
export type SyncState = "syncing" | "idle";

/**
 * Whether the homeserver answers.
 */
export type ConnectionState = "online" | "unreachable";

/**
 * One frame of the event WebSocket (`GET /api/events`).
 */
export type ServerEvent = { "event": "message", group_id: string, message: Message, } | { "event": "message_changed", group_id: string, message: Message, } | { "event": "action_refused", group_id: string, message: string, } | { "event": "security_alert", message: string, } | { "event": "message_deleted", group_id: string, seq: number, } | { "event": "delivered", group_id: string, seq: number, to: DeviceRef, } | { "event": "delivery", group_id: string, servers: Array<ServerPosition>, } | { "event": "conversation", conversation: Conversation, } | { "event": "typing", group_id: string, user_id: string, typing: boolean, } | { "event": "presence", user_id: string, presence: Presence, } | { "event": "verified_contact_changed", user_id: string, added: Array<ContactDevice>, removed: Array<ContactDevice>, } | { "event": "leaf_refused", group_id: string, 
/**
 * `welcome` or `commit`.
 */
source: string, by?: DeviceRef, leaves: Array<RefusedLeafView>, message: string, } | { "event": "sync", state: SyncState, 
/**
 * Left to process, when known (not sent yet).
 */
pending?: number, } | { "event": "restore", done: number, total: number, } | { "event": "connection", state: ConnectionState, message?: string, };

/**
 * `GET /api/2fa`: the account's second factor.
 */
export type SecondFactorState = { enabled: boolean, 
/**
 * An enrolment waits for its confirming code.
 */
pending: boolean, recovery_codes_left: number, };

/**
 * `POST /api/2fa/enroll`: the secret to put in an authenticator app, shown once.
 */
export type SecondFactorEnrollmentView = { 
/**
 * Base32, for typing in by hand.
 */
secret: string, otpauth_uri: string, 
/**
 * The URI as a QR code: an SVG document made by the local process.
 */
qr_svg: string, };

/**
 * `POST /api/2fa/confirm`: single-use codes, shown once.
 */
export type RecoveryCodes = { recovery_codes: Array<string>, };
