//! Request and response bodies of the operator's admin API (`/admin/v1`, see
//! `specs/openapi/admin-api.yaml`), shared by the homeserver and `parley-homeserver admin`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{DeviceId, ServerName, UserId};

/// Users per page when the query names no limit, and the most one page may hold.
pub const DEFAULT_USERS_PER_PAGE: u32 = 100;
pub const MAX_USERS_PER_PAGE: u32 = 1000;

/// `GET /admin/v1/users` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Only localparts containing this substring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Only localparts after this one (the previous page's `next_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// An account as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub user_id: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub deactivated: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deactivated_at: Option<OffsetDateTime>,
    /// Logged-in devices (each holds one access token).
    pub devices: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<AdminUser>,
    /// Set when there may be more: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeactivateResponse {
    pub user: AdminUser,
    /// Devices deleted, so their access tokens no longer work.
    pub revoked_devices: u64,
    /// Unclaimed KeyPackages deleted, so nobody can add the account's devices to a group.
    pub deleted_key_packages: u64,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetPasswordResponse {
    /// Every session of the account ends with the reset.
    pub revoked_devices: u64,
}

/// What resetting an account's second factor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetSecondFactorResponse {
    /// Whether the account had a second factor (enabled or pending) that is now gone.
    pub was_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminDevice {
    pub device_id: DeviceId,
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// One-time KeyPackages uploaded and not yet claimed (unexpired).
    pub unclaimed_key_packages: i64,
    /// Inbox entries not yet acknowledged.
    pub inbox_entries: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminDeviceList {
    pub user_id: UserId,
    pub devices: Vec<AdminDevice>,
}

/// Another server this one has sent (or queued) group messages for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    pub server: String,
    /// Messages waiting to be sent to it.
    pub queue_depth: i64,
    /// Age of the oldest waiting message; absent when nothing waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_queued_age_secs: Option<f64>,
    /// Consecutive failed sends (0: healthy).
    pub failures: i32,
    /// Whether it is waiting out a backoff (`next_attempt_at` is in the future).
    pub backing_off: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Whether the federation policy lets this server send to it; a server it does not
    /// federate with has its queue dropped at the next attempt.
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationList {
    pub destinations: Vec<Destination>,
}

/// Allow and deny lists of remote servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLists {
    /// When set, the only servers this one federates with; `null`: every server not denied.
    #[serde(default)]
    pub allow: Option<Vec<ServerName>>,
    /// Servers this one never federates with.
    #[serde(default)]
    pub deny: Vec<ServerName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    /// Lists set through the admin API, stored in the database.
    Database,
    /// The `[federation]` allow and deny keys of the configuration file.
    ConfigFile,
}

/// `GET`/`PUT`/`DELETE /admin/v1/federation/policy`: the lists in effect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    #[serde(default)]
    pub allow: Option<Vec<ServerName>>,
    pub deny: Vec<ServerName>,
    pub source: PolicySource,
    /// The configuration file's lists (in effect when `source` is `config_file`).
    pub config_file: PolicyLists,
    /// Whether this server has a `[federation]` section at all.
    pub federation_enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStats {
    pub server_name: ServerName,
    pub version: String,
    pub users: i64,
    pub deactivated_users: i64,
    pub devices: i64,
    /// Groups whose hub is this server.
    pub groups_hubbed: i64,
    /// Groups hubbed elsewhere with members here.
    pub groups_followed: i64,
    pub stored_messages: i64,
    /// Inbox entries no device has acknowledged yet.
    pub undelivered_inbox_entries: i64,
    /// One-time KeyPackages waiting to be claimed (unexpired).
    pub unclaimed_key_packages: i64,
    /// Messages queued for other servers, all destinations together.
    pub federation_queue: i64,
    pub federation_destinations: i64,
    pub database_size_bytes: i64,
    pub schema_version: i32,
}

/// `GET /admin/v1/storage`: what the database holds, what retention still has to delete,
/// and the oldest undelivered entries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageReport {
    /// `pg_database_size` of the homeserver's database.
    pub database_size_bytes: i64,
    /// Every table, biggest first.
    pub tables: Vec<TableSize>,
    /// Rows past their retention still waiting for the sweeper.
    pub retention_backlog: RetentionBacklog,
    /// Whether the retention sweeper runs (`[retention] enabled`).
    pub retention_enabled: bool,
    /// The outbound federation queue, per destination, oldest first.
    pub peers: Vec<PeerBacklog>,
    /// Local devices' inboxes.
    pub inbox: InboxBacklog,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSize {
    pub table: String,
    /// PostgreSQL's estimate (kept by autovacuum and ANALYZE); 0 before the first analyze.
    pub rows_estimate: i64,
    /// On disk, with indexes and TOAST.
    pub bytes: i64,
}

/// Rows the retention rules delete that are still there (the sweeper takes them in
/// batches at each pass).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionBacklog {
    /// Stored messages every local device and member server has (older than the minimum
    /// age), or older than the maximum age.
    pub messages: i64,
    /// Inbox entries of devices idle longer than the maximum idle age.
    pub idle_device_inbox_entries: i64,
    /// Delivery receipts waiting in inboxes for messages older than the receipt age.
    pub receipts: i64,
    /// One-time KeyPackages past their expiry.
    pub expired_key_packages: i64,
    /// KeyPackage claim records older than an hour.
    pub key_package_claims: i64,
    /// Federation replay records older than the replay window.
    pub replay_records: i64,
}

/// Messages waiting to be sent to one other server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBacklog {
    pub server: String,
    pub queued: i64,
    /// When the oldest waiting message was queued; absent when nothing waits.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub oldest_enqueued_at: Option<OffsetDateTime>,
    /// Consecutive failed sends.
    pub failures: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxBacklog {
    /// Entries not yet acknowledged (PostgreSQL's estimate).
    pub entries_estimate: i64,
    /// Devices with at least one entry waiting.
    pub devices_with_entries: i64,
    /// The entry whose message is the oldest; absent when every inbox is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_entry: Option<OldestInboxEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldestInboxEntry {
    pub localpart: String,
    pub device_id: String,
    pub group_id: String,
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}
