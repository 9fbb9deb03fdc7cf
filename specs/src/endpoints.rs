//! Every HTTP endpoint, declared once: method, path template, authentication and whether
//! it is rate-limited. The homeserver routes by these values and the SDK calls by them,
//! and so does `parley ui` for its local API; tests check that `specs/openapi/*.yaml` and
//! `specs/local-ui-api.md` document exactly these lists.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may call it.
    None,
    /// `Authorization: Bearer <access token>` of a logged-in device.
    AccessToken,
    /// `Authorization: Parley-Federation ...` signed by the origin server's key, on a
    /// connection whose client certificate is valid for that origin.
    ServerSignature,
    /// `Authorization: Bearer <admin token>`: the operator's token from the `[admin]
    /// token_file`, accepted only on the admin listener.
    AdminToken,
    /// `Authorization: Bearer <secret>` with the secret `parley ui` makes at each launch
    /// (`?secret=<secret>` on its event WebSocket, where browsers cannot set headers).
    LaunchSecret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: Method,
    /// Path template; `{name}` marks a path parameter, as in OpenAPI.
    pub path: &'static str,
    pub auth: Auth,
    pub rate_limited: bool,
}

impl Endpoint {
    /// The path with each `{param}` replaced, in order, by the given values
    /// (percent-encoded, so a value can never add a path segment).
    pub fn path_with(&self, params: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len());
        let mut values = params.iter();
        let mut rest = self.path;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
            out.push_str(&percent_encode(values.next().copied().unwrap_or_default()));
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const fn endpoint(method: Method, path: &'static str, auth: Auth, rate_limited: bool) -> Endpoint {
    Endpoint {
        method,
        path,
        auth,
        rate_limited,
    }
}

/// The client API (`/client/v1`), used by devices.
pub mod client {
    use super::{Auth::*, Endpoint, Method::*, endpoint};

    pub const REGISTER: Endpoint = endpoint(Post, "/client/v1/register", None, true);
    pub const LOGIN: Endpoint = endpoint(Post, "/client/v1/login", None, true);
    pub const LOGOUT: Endpoint = endpoint(Post, "/client/v1/logout", AccessToken, false);
    pub const LOGOUT_ALL: Endpoint = endpoint(Post, "/client/v1/logout/all", AccessToken, false);
    pub const WHOAMI: Endpoint = endpoint(Get, "/client/v1/account/whoami", AccessToken, false);
    pub const CHANGE_PASSWORD: Endpoint = endpoint(Post, "/client/v1/account/password", AccessToken, true);
    /// Second factor (TOTP): its state, starting and confirming an enrolment, disabling.
    pub const SECOND_FACTOR_STATUS: Endpoint = endpoint(Get, "/client/v1/account/2fa", AccessToken, false);
    pub const SECOND_FACTOR_ENROLL: Endpoint = endpoint(Post, "/client/v1/account/2fa/enroll", AccessToken, false);
    pub const SECOND_FACTOR_CONFIRM: Endpoint = endpoint(Post, "/client/v1/account/2fa/confirm", AccessToken, false);
    pub const SECOND_FACTOR_DISABLE: Endpoint = endpoint(Post, "/client/v1/account/2fa/disable", AccessToken, true);
    pub const LIST_DEVICES: Endpoint = endpoint(Get, "/client/v1/devices", AccessToken, false);
    pub const RENAME_DEVICE: Endpoint = endpoint(Put, "/client/v1/devices/{device_id}", AccessToken, false);
    pub const DELETE_DEVICE: Endpoint = endpoint(Delete, "/client/v1/devices/{device_id}", AccessToken, false);

    pub const UPLOAD_KEY_PACKAGES: Endpoint = endpoint(Post, "/client/v1/keys/packages", AccessToken, false);
    pub const KEY_PACKAGE_COUNT: Endpoint = endpoint(Get, "/client/v1/keys/packages/count", AccessToken, false);
    pub const CLAIM_KEY_PACKAGES: Endpoint = endpoint(Post, "/client/v1/keys/claim", AccessToken, true);
    /// The device key directory: a user's devices with their MLS signature keys, from
    /// this server's store for its own users, from the user's server otherwise.
    pub const USER_DEVICES: Endpoint = endpoint(Get, "/client/v1/users/{user_id}/devices", AccessToken, false);
    /// Key transparency: the key-history proof of the caller's own account since a
    /// version (`?since_version=N`), which its devices check for devices they did not see.
    pub const TRANSPARENCY_HISTORY: Endpoint = endpoint(Get, "/client/v1/transparency/history", AccessToken, false);

    pub const CREATE_GROUP: Endpoint = endpoint(Post, "/client/v1/groups", AccessToken, false);
    pub const LIST_GROUPS: Endpoint = endpoint(Get, "/client/v1/groups", AccessToken, false);
    pub const GET_GROUP: Endpoint = endpoint(Get, "/client/v1/groups/{group_id}", AccessToken, false);
    pub const SUBMIT_COMMIT: Endpoint = endpoint(Post, "/client/v1/groups/{group_id}/commits", AccessToken, true);
    pub const SUBMIT_MESSAGE: Endpoint = endpoint(Post, "/client/v1/groups/{group_id}/messages", AccessToken, true);
    /// How far each server with members has stored the group's messages; a follower asks
    /// the hub (see the federation endpoint of the same name).
    pub const GROUP_DELIVERY: Endpoint = endpoint(Get, "/client/v1/groups/{group_id}/delivery", AccessToken, false);
    /// The group's current GroupInfo (as its last committer signed it) and the hub's
    /// ratchet tree: for member devices (a Welcome without the tree) and for any device of
    /// a user with a member device (an external join). A follower asks the hub.
    pub const GROUP_INFO: Endpoint = endpoint(Get, "/client/v1/groups/{group_id}/group-info", AccessToken, false);
    /// The calling device's user leaves the group, with every other member offline: the
    /// hub records it, takes no more messages from that user's devices, stops delivering
    /// to them, and takes no commit that keeps their leaves. A follower forwards it.
    pub const LEAVE_GROUP: Endpoint = endpoint(Post, "/client/v1/groups/{group_id}/leave", AccessToken, false);
    pub const READ_INBOX: Endpoint = endpoint(Get, "/client/v1/inbox", AccessToken, false);
    pub const ACK_INBOX: Endpoint = endpoint(Post, "/client/v1/inbox/ack", AccessToken, false);
    /// A WebSocket: the server pushes inbox entries as JSON text frames.
    pub const INBOX_STREAM: Endpoint = endpoint(Get, "/client/v1/inbox/stream", AccessToken, false);

    /// Starts a resumable upload of an encrypted file's ciphertext (`size` bytes) for a
    /// group the device is a member of; refused over `[files] max_file_bytes` or the
    /// user's quota.
    pub const CREATE_UPLOAD: Endpoint = endpoint(Post, "/client/v1/uploads", AccessToken, true);
    /// Where an upload of this device's user stands: the offset to continue from.
    pub const GET_UPLOAD: Endpoint = endpoint(Get, "/client/v1/uploads/{blob_id}", AccessToken, false);
    /// Appends the body (`application/octet-stream`) at `?offset=`, which must be the
    /// upload's current offset.
    pub const PUT_UPLOAD: Endpoint = endpoint(Put, "/client/v1/uploads/{blob_id}", AccessToken, false);
    /// Ends an upload whose every byte arrived: the blob can be downloaded from then on.
    pub const COMPLETE_UPLOAD: Endpoint = endpoint(Post, "/client/v1/uploads/{blob_id}/complete", AccessToken, false);
    /// Deletes a blob of this user (e.g. its message was deleted for everyone).
    pub const DELETE_UPLOAD: Endpoint = endpoint(Delete, "/client/v1/uploads/{blob_id}", AccessToken, false);
    /// A blob's ciphertext, streamed: from this server's store when `{server}` is this
    /// server, else fetched from `{server}` over federation.
    pub const DOWNLOAD_BLOB: Endpoint = endpoint(Get, "/client/v1/blobs/{server}/{blob_id}", AccessToken, false);
    /// The account's key backup chunks (ids, versions, sizes), used bytes and quota.
    pub const LIST_BACKUP_CHUNKS: Endpoint = endpoint(Get, "/client/v1/key-backup/chunks", AccessToken, false);
    /// Stores a chunk (raw bytes) if its stored version is `?expected_version=`.
    pub const PUT_BACKUP_CHUNK: Endpoint = endpoint(Put, "/client/v1/key-backup/chunks/{chunk_id}", AccessToken, false);
    /// A chunk's bytes; its version in the `Parley-Backup-Version` header.
    pub const GET_BACKUP_CHUNK: Endpoint = endpoint(Get, "/client/v1/key-backup/chunks/{chunk_id}", AccessToken, false);
    /// Deletes every chunk of the account's key backup.
    pub const DELETE_BACKUP: Endpoint = endpoint(Delete, "/client/v1/key-backup", AccessToken, false);

    pub const ALL: &[Endpoint] = &[
        REGISTER,
        LOGIN,
        LOGOUT,
        LOGOUT_ALL,
        WHOAMI,
        CHANGE_PASSWORD,
        SECOND_FACTOR_STATUS,
        SECOND_FACTOR_ENROLL,
        SECOND_FACTOR_CONFIRM,
        SECOND_FACTOR_DISABLE,
        LIST_DEVICES,
        RENAME_DEVICE,
        DELETE_DEVICE,
        UPLOAD_KEY_PACKAGES,
        KEY_PACKAGE_COUNT,
        CLAIM_KEY_PACKAGES,
        USER_DEVICES,
        TRANSPARENCY_HISTORY,
        CREATE_GROUP,
        LIST_GROUPS,
        GET_GROUP,
        SUBMIT_COMMIT,
        SUBMIT_MESSAGE,
        GROUP_DELIVERY,
        GROUP_INFO,
        LEAVE_GROUP,
        READ_INBOX,
        ACK_INBOX,
        INBOX_STREAM,
        CREATE_UPLOAD,
        GET_UPLOAD,
        PUT_UPLOAD,
        COMPLETE_UPLOAD,
        DELETE_UPLOAD,
        DOWNLOAD_BLOB,
        LIST_BACKUP_CHUNKS,
        PUT_BACKUP_CHUNK,
        GET_BACKUP_CHUNK,
        DELETE_BACKUP,
    ];
}

/// Operational endpoints for load balancers and monitoring.
pub mod ops {
    use super::{Auth::*, Endpoint, Method::*, endpoint};

    pub const HEALTH: Endpoint = endpoint(Get, "/health", None, false);
    pub const READY: Endpoint = endpoint(Get, "/ready", None, false);
    pub const METRICS: Endpoint = endpoint(Get, "/metrics", None, false);
    /// Where this server's federation API listens, for other servers that look it up by
    /// the server name (`{"server": "<host>[:<port>]"}`); 404 unless configured.
    pub const WELL_KNOWN_SERVER: Endpoint = endpoint(Get, "/.well-known/parley/server", None, false);

    pub const ALL: &[Endpoint] = &[HEALTH, READY, METRICS, WELL_KNOWN_SERVER];
}

/// The federation API (`/federation/v1`), used by other homeservers. It listens on its
/// own port and only over mutually authenticated TLS.
pub mod federation {
    use super::{Auth::*, Endpoint, Method::*, endpoint};

    /// The server's self-signed key document: anyone with a client certificate may fetch
    /// it; the document's own signatures are what a peer checks.
    pub const SERVER_KEYS: Endpoint = endpoint(Get, "/federation/v1/keys", None, false);
    /// Which server and version answers, and which origin it authenticated: the check
    /// an operator runs to see that two servers federate.
    pub const VERSION: Endpoint = endpoint(Get, "/federation/v1/version", ServerSignature, false);

    /// One KeyPackage per device of a user of this server, claimed for a member of the
    /// origin server who is adding that user to a group.
    pub const CLAIM_KEY_PACKAGES: Endpoint = endpoint(Post, "/federation/v1/keys/claim", ServerSignature, true);
    /// The device key directory entry of a user of this server, signed by this server's
    /// key (`SignedDeviceKeys`); never for another server's users.
    pub const USER_DEVICES: Endpoint = endpoint(Get, "/federation/v1/users/{user_id}/devices", ServerSignature, false);
    /// Key transparency: this server's signed roots of epochs `?from_epoch=A&to_epoch=B`
    /// and the append-only proof between them, for servers auditing this one.
    pub const TRANSPARENCY_AUDIT: Endpoint = endpoint(Get, "/federation/v1/transparency/audit", ServerSignature, true);

    /// A follower server forwards its user's commit to the group's hub; the answer is
    /// the hub's, relayed to the client (`409 wrong_epoch` included).
    pub const SUBMIT_COMMIT: Endpoint =
        endpoint(Post, "/federation/v1/groups/{group_id}/commits", ServerSignature, false);
    /// A follower server forwards its user's application message to the group's hub.
    pub const SUBMIT_MESSAGE: Endpoint = endpoint(
        Post,
        "/federation/v1/groups/{group_id}/messages",
        ServerSignature,
        false,
    );
    /// The hub sends a follower the group messages its members should receive, in order,
    /// each signed by the hub. Idempotent by transaction id and by (group, seq).
    pub const SEND_TRANSACTION: Endpoint =
        endpoint(Put, "/federation/v1/transactions/{txn_id}", ServerSignature, false);
    /// A follower that found a gap in a group's sequence numbers fetches the missing
    /// messages from the hub (`?after=<seq>&limit=<n>`).
    pub const BACKFILL: Endpoint = endpoint(Get, "/federation/v1/groups/{group_id}/messages", ServerSignature, false);

    /// A follower asks the hub how far each server with members has stored the group
    /// (answered only to servers with members in it).
    pub const GROUP_DELIVERY: Endpoint =
        endpoint(Get, "/federation/v1/groups/{group_id}/delivery", ServerSignature, false);
    /// The server of devices that acknowledged messages sends delivery receipts to the
    /// server of the messages' senders (best effort; at most `MAX_RECEIPTS_PER_REQUEST`).
    pub const RECEIPTS: Endpoint = endpoint(Post, "/federation/v1/receipts", ServerSignature, false);
    /// The server of a user with a member device asks the hub for the group's GroupInfo
    /// and ratchet tree on behalf of one of that user's devices (answered only for users
    /// of the origin who have a member device; else `not_found`).
    pub const GROUP_INFO: Endpoint = endpoint(
        Post,
        "/federation/v1/groups/{group_id}/group-info",
        ServerSignature,
        false,
    );
    /// A follower forwards its user's leave (see the client endpoint of the same name).
    pub const LEAVE_GROUP: Endpoint = endpoint(Post, "/federation/v1/groups/{group_id}/leave", ServerSignature, false);
    /// The origin rotated its signing key (signed with the new one, no body): the
    /// receiver fetches its key document again now, so a revoked key stops verifying at
    /// once rather than when the cached document expires.
    pub const KEYS_CHANGED: Endpoint = endpoint(Post, "/federation/v1/keys/changed", ServerSignature, false);
    /// A blob uploaded to this server, streamed to a server with members in the group it
    /// was posted in (else `403 blob_forbidden`).
    pub const FETCH_BLOB: Endpoint = endpoint(Get, "/federation/v1/blobs/{blob_id}", ServerSignature, false);

    pub const ALL: &[Endpoint] = &[
        SERVER_KEYS,
        VERSION,
        CLAIM_KEY_PACKAGES,
        USER_DEVICES,
        TRANSPARENCY_AUDIT,
        SUBMIT_COMMIT,
        SUBMIT_MESSAGE,
        SEND_TRANSACTION,
        BACKFILL,
        GROUP_DELIVERY,
        RECEIPTS,
        GROUP_INFO,
        LEAVE_GROUP,
        KEYS_CHANGED,
        FETCH_BLOB,
    ];
}

/// The operator's admin API (`/admin/v1`). It listens on its own address (`[admin]
/// listen`, loopback by default), never on the client or federation listener, and every
/// request needs the admin token.
pub mod admin {
    use super::{Auth::*, Endpoint, Method::*, endpoint};

    /// Accounts of this server, by localpart: `?search=<substring>&after=<localpart>&limit=<n>`.
    pub const LIST_USERS: Endpoint = endpoint(Get, "/admin/v1/users", AdminToken, false);
    /// One account; `{user_id}` is the localpart or the full user id.
    pub const GET_USER: Endpoint = endpoint(Get, "/admin/v1/users/{user_id}", AdminToken, false);
    /// Refuses the account's logins, revokes every token and drops its unclaimed KeyPackages.
    pub const DEACTIVATE_USER: Endpoint = endpoint(Post, "/admin/v1/users/{user_id}/deactivate", AdminToken, false);
    pub const REACTIVATE_USER: Endpoint = endpoint(Post, "/admin/v1/users/{user_id}/reactivate", AdminToken, false);
    /// Sets a new password and revokes every session of the account.
    pub const RESET_PASSWORD: Endpoint = endpoint(Post, "/admin/v1/users/{user_id}/password", AdminToken, false);
    pub const LIST_DEVICES: Endpoint = endpoint(Get, "/admin/v1/users/{user_id}/devices", AdminToken, false);
    /// Key transparency: this server's latest epoch, unpublished changes, audited
    /// servers and failed audits.
    pub const TRANSPARENCY_STATUS: Endpoint = endpoint(Get, "/admin/v1/transparency", AdminToken, false);
    /// Turns the account's second factor off (secret and recovery codes deleted), for a
    /// user who lost both; the next login needs the password only.
    pub const RESET_SECOND_FACTOR: Endpoint = endpoint(Post, "/admin/v1/users/{user_id}/2fa/reset", AdminToken, false);
    /// Deletes the device, revoking its token at once (as when its user deletes it).
    pub const REVOKE_DEVICE: Endpoint = endpoint(
        Delete,
        "/admin/v1/users/{user_id}/devices/{device_id}",
        AdminToken,
        false,
    );
    /// Other servers this one sends to: queue depth, failures and backoff.
    pub const LIST_DESTINATIONS: Endpoint = endpoint(Get, "/admin/v1/federation/destinations", AdminToken, false);
    /// Ends a destination's backoff: its queue is sent now.
    pub const RETRY_DESTINATION: Endpoint = endpoint(
        Post,
        "/admin/v1/federation/destinations/{server}/retry",
        AdminToken,
        false,
    );
    /// The allow and deny lists in effect, and where they come from.
    pub const GET_POLICY: Endpoint = endpoint(Get, "/admin/v1/federation/policy", AdminToken, false);
    /// Replaces the allow and deny lists (stored in the database; they override the
    /// configuration file's, on every process within about two seconds).
    pub const SET_POLICY: Endpoint = endpoint(Put, "/admin/v1/federation/policy", AdminToken, false);
    /// Forgets the stored lists: the configuration file's apply again.
    pub const RESET_POLICY: Endpoint = endpoint(Delete, "/admin/v1/federation/policy", AdminToken, false);
    /// Counts of users, devices, groups, messages, queues; database size and schema version.
    pub const STATS: Endpoint = endpoint(Get, "/admin/v1/stats", AdminToken, false);
    /// Table sizes, the retention backlog, and the oldest undelivered entry per other
    /// server and in local inboxes.
    pub const STORAGE: Endpoint = endpoint(Get, "/admin/v1/storage", AdminToken, false);

    pub const ALL: &[Endpoint] = &[
        LIST_USERS,
        GET_USER,
        DEACTIVATE_USER,
        REACTIVATE_USER,
        RESET_PASSWORD,
        LIST_DEVICES,
        TRANSPARENCY_STATUS,
        RESET_SECOND_FACTOR,
        REVOKE_DEVICE,
        LIST_DESTINATIONS,
        RETRY_DESTINATION,
        GET_POLICY,
        SET_POLICY,
        RESET_POLICY,
        STATS,
        STORAGE,
    ];
}

/// The local API of `parley ui` (`/api`), served on 127.0.0.1 to the web app it embeds
/// (`specs/local-ui-api.md`).
pub mod local_ui {
    use super::{Auth::*, Endpoint, Method::*, endpoint};

    /// Every path of the local API starts with this; other paths are the web app's files.
    pub const PREFIX: &str = "/api";

    pub const SESSION: Endpoint = endpoint(Get, "/api/session", LaunchSecret, false);
    pub const REGISTER: Endpoint = endpoint(Post, "/api/register", LaunchSecret, false);
    pub const LOGIN: Endpoint = endpoint(Post, "/api/login", LaunchSecret, false);
    /// Opens the profile's sealed store with its passphrase.
    pub const UNLOCK: Endpoint = endpoint(Post, "/api/unlock", LaunchSecret, false);
    pub const LOGOUT: Endpoint = endpoint(Post, "/api/logout", LaunchSecret, false);

    pub const LIST_CONVERSATIONS: Endpoint = endpoint(Get, "/api/conversations", LaunchSecret, false);
    pub const CREATE_CONVERSATION: Endpoint = endpoint(Post, "/api/conversations", LaunchSecret, false);
    pub const GET_CONVERSATION: Endpoint = endpoint(Get, "/api/conversations/{group_id}", LaunchSecret, false);
    /// Leaves the group if still a member and deletes its local history.
    pub const DELETE_CONVERSATION: Endpoint = endpoint(Delete, "/api/conversations/{group_id}", LaunchSecret, false);
    pub const ADD_MEMBERS: Endpoint = endpoint(Post, "/api/conversations/{group_id}/members", LaunchSecret, false);
    pub const REMOVE_MEMBER: Endpoint = endpoint(
        Delete,
        "/api/conversations/{group_id}/members/{user_id}",
        LaunchSecret,
        false,
    );
    pub const LEAVE: Endpoint = endpoint(Post, "/api/conversations/{group_id}/leave", LaunchSecret, false);
    /// Renames the group and/or sets its topic (admins only).
    pub const UPDATE_SETTINGS: Endpoint = endpoint(Put, "/api/conversations/{group_id}/settings", LaunchSecret, false);
    /// Promotes or demotes a member (admins only).
    pub const SET_ADMIN: Endpoint = endpoint(Post, "/api/conversations/{group_id}/admins", LaunchSecret, false);
    pub const LIST_MESSAGES: Endpoint = endpoint(Get, "/api/conversations/{group_id}/messages", LaunchSecret, false);
    pub const SEND_MESSAGE: Endpoint = endpoint(Post, "/api/conversations/{group_id}/messages", LaunchSecret, false);
    pub const DELETE_MESSAGE: Endpoint = endpoint(
        Delete,
        "/api/conversations/{group_id}/messages/{seq}",
        LaunchSecret,
        false,
    );
    /// A new text for an own message (an edit, for everyone).
    pub const EDIT_MESSAGE: Endpoint =
        endpoint(Put, "/api/conversations/{group_id}/messages/{seq}", LaunchSecret, false);
    /// Adds this user's reaction to a message, or takes it back.
    pub const REACT: Endpoint = endpoint(
        Post,
        "/api/conversations/{group_id}/messages/{seq}/reactions",
        LaunchSecret,
        false,
    );
    /// Sends the body (a file's bytes, `?name=&text=`) to the group, encrypted.
    pub const SEND_FILE: Endpoint = endpoint(Post, "/api/conversations/{group_id}/files", LaunchSecret, false);
    /// The file of a message, downloaded, checked and decrypted (for previews and saving).
    pub const GET_FILE: Endpoint = endpoint(
        Get,
        "/api/conversations/{group_id}/messages/{seq}/file",
        LaunchSecret,
        false,
    );
    pub const SET_TIMER: Endpoint = endpoint(Put, "/api/conversations/{group_id}/timer", LaunchSecret, false);
    pub const MARK_READ: Endpoint = endpoint(Post, "/api/conversations/{group_id}/read", LaunchSecret, false);
    pub const TYPING: Endpoint = endpoint(Post, "/api/conversations/{group_id}/typing", LaunchSecret, false);
    /// The conversation as a file (`?format=text|json`), not JSON.
    pub const EXPORT: Endpoint = endpoint(Get, "/api/conversations/{group_id}/export", LaunchSecret, false);
    pub const SEARCH: Endpoint = endpoint(Get, "/api/search", LaunchSecret, false);

    pub const CONTACT: Endpoint = endpoint(Get, "/api/contacts/{user_id}", LaunchSecret, false);
    pub const VERIFY_CONTACT: Endpoint = endpoint(Post, "/api/contacts/{user_id}/verify", LaunchSecret, false);
    pub const ACKNOWLEDGE_CONTACT: Endpoint =
        endpoint(Post, "/api/contacts/{user_id}/acknowledge", LaunchSecret, false);

    pub const LIST_DEVICES: Endpoint = endpoint(Get, "/api/devices", LaunchSecret, false);
    pub const DELETE_DEVICE: Endpoint = endpoint(Delete, "/api/devices/{device_id}", LaunchSecret, false);
    pub const PRESENCE: Endpoint = endpoint(Post, "/api/presence", LaunchSecret, false);
    /// The account's second factor (TOTP): state, enrolment (with its QR code as SVG),
    /// confirmation, disabling.
    pub const SECOND_FACTOR: Endpoint = endpoint(Get, "/api/2fa", LaunchSecret, false);
    pub const ENROLL_SECOND_FACTOR: Endpoint = endpoint(Post, "/api/2fa/enroll", LaunchSecret, false);
    pub const CONFIRM_SECOND_FACTOR: Endpoint = endpoint(Post, "/api/2fa/confirm", LaunchSecret, false);
    pub const DISABLE_SECOND_FACTOR: Endpoint = endpoint(Post, "/api/2fa/disable", LaunchSecret, false);
    /// The key backup: status, turn on (answers the recovery key, once), turn off.
    pub const BACKUP_STATUS: Endpoint = endpoint(Get, "/api/backup", LaunchSecret, false);
    pub const ENABLE_BACKUP: Endpoint = endpoint(Post, "/api/backup", LaunchSecret, false);
    pub const DISABLE_BACKUP: Endpoint = endpoint(Delete, "/api/backup", LaunchSecret, false);
    /// Restores the account's key backup on this device, then joins its conversations.
    pub const RESTORE: Endpoint = endpoint(Post, "/api/restore", LaunchSecret, false);
    /// A WebSocket: the local process pushes events as JSON text frames. The secret comes
    /// as `?secret=`.
    pub const EVENTS: Endpoint = endpoint(Get, "/api/events", LaunchSecret, false);

    pub const ALL: &[Endpoint] = &[
        SESSION,
        REGISTER,
        LOGIN,
        UNLOCK,
        LOGOUT,
        LIST_CONVERSATIONS,
        CREATE_CONVERSATION,
        GET_CONVERSATION,
        DELETE_CONVERSATION,
        ADD_MEMBERS,
        REMOVE_MEMBER,
        LEAVE,
        UPDATE_SETTINGS,
        SET_ADMIN,
        LIST_MESSAGES,
        SEND_MESSAGE,
        DELETE_MESSAGE,
        EDIT_MESSAGE,
        REACT,
        SEND_FILE,
        GET_FILE,
        SET_TIMER,
        MARK_READ,
        TYPING,
        EXPORT,
        SEARCH,
        CONTACT,
        VERIFY_CONTACT,
        ACKNOWLEDGE_CONTACT,
        LIST_DEVICES,
        DELETE_DEVICE,
        PRESENCE,
        SECOND_FACTOR,
        ENROLL_SECOND_FACTOR,
        CONFIRM_SECOND_FACTOR,
        DISABLE_SECOND_FACTOR,
        BACKUP_STATUS,
        ENABLE_BACKUP,
        DISABLE_BACKUP,
        RESTORE,
        EVENTS,
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn path_params_are_filled_and_encoded() {
        assert_eq!(client::RENAME_DEVICE.path_with(&["ABC"]), "/client/v1/devices/ABC");
        assert_eq!(
            client::RENAME_DEVICE.path_with(&["a/../b c"]),
            "/client/v1/devices/a%2F..%2Fb%20c"
        );
        assert_eq!(client::LOGIN.path_with(&[]), "/client/v1/login");
    }

    /// The endpoints an OpenAPI document describes: (method, path, needs authentication).
    fn documented(yaml: &str) -> BTreeSet<(String, String, bool)> {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("valid YAML");
        let paths = doc.get("paths").and_then(|p| p.as_mapping()).expect("has paths");
        let mut documented = BTreeSet::new();
        for (path, ops) in paths {
            let path = path.as_str().expect("path is a string");
            for (method, op) in ops.as_mapping().expect("path item is a mapping") {
                let method = method.as_str().expect("method is a string").to_ascii_uppercase();
                if method == "PARAMETERS" {
                    continue;
                }
                let secured = op
                    .get("security")
                    .and_then(|s| s.as_sequence())
                    .is_some_and(|s| !s.is_empty());
                documented.insert((method, path.to_owned(), secured));
            }
        }
        documented
    }

    fn assert_documented(file: &str, yaml: &str, declared: &[&[Endpoint]]) {
        let documented = documented(yaml);
        let declared: BTreeSet<_> = declared
            .iter()
            .copied()
            .flatten()
            .map(|e| (e.method.as_str().to_owned(), e.path.to_owned(), e.auth != Auth::None))
            .collect();
        let undocumented: Vec<_> = declared.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&declared).collect();
        assert!(
            undocumented.is_empty(),
            "declared but not in {file} (method, path, authenticated): {undocumented:?}"
        );
        assert!(unknown.is_empty(), "in {file} but not declared: {unknown:?}");
    }

    /// Each OpenAPI document names exactly the endpoints declared here, no more, no fewer.
    #[test]
    fn openapi_documents_match_declared_endpoints() {
        assert_documented(
            "client-api.yaml",
            include_str!("../openapi/client-api.yaml"),
            &[client::ALL, ops::ALL],
        );
        assert_documented(
            "federation-api.yaml",
            include_str!("../openapi/federation-api.yaml"),
            &[federation::ALL],
        );
        assert_documented(
            "admin-api.yaml",
            include_str!("../openapi/admin-api.yaml"),
            &[admin::ALL],
        );
    }

    /// The endpoints a Markdown document names: every `` `METHOD /api/…` `` code span in
    /// it, without a query string.
    fn named_in_markdown(markdown: &str) -> BTreeSet<(String, String)> {
        let mut named = BTreeSet::new();
        for method in [Method::Get, Method::Post, Method::Put, Method::Delete] {
            let opening = format!("`{} {}", method.as_str(), local_ui::PREFIX);
            for (at, _) in markdown.match_indices(&opening) {
                let span = &markdown[at + 1..];
                let span = &span[..span.find('`').expect("the code span is closed")];
                let path = span[method.as_str().len() + 1..].split('?').next().unwrap_or_default();
                named.insert((method.as_str().to_owned(), path.to_owned()));
            }
        }
        named
    }

    /// `local-ui-api.md` names exactly the local API's declared endpoints, each of which
    /// needs the launch secret.
    #[test]
    fn local_ui_document_matches_declared_endpoints() {
        let documented = named_in_markdown(include_str!("../local-ui-api.md"));
        let declared: BTreeSet<_> = local_ui::ALL
            .iter()
            .map(|e| (e.method.as_str().to_owned(), e.path.to_owned()))
            .collect();
        let undocumented: Vec<_> = declared.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&declared).collect();
        assert!(
            undocumented.is_empty(),
            "declared but not in local-ui-api.md: {undocumented:?}"
        );
        assert!(unknown.is_empty(), "in local-ui-api.md but not declared: {unknown:?}");
        for endpoint in local_ui::ALL {
            assert_eq!(endpoint.auth, Auth::LaunchSecret, "{}", endpoint.path);
            assert!(endpoint.path.starts_with("/api/"), "{}", endpoint.path);
        }
        assert_eq!(
            named_in_markdown("`GET /api/a?x=1` and `POST /api/b/{id}`, not `GET /client/v1/c`"),
            BTreeSet::from([("GET".into(), "/api/a".into()), ("POST".into(), "/api/b/{id}".into())])
        );
    }

    /// Every admin endpoint names the admin token as its security scheme, and no other
    /// document has an endpoint under `/admin/`.
    #[test]
    fn admin_endpoints_need_the_admin_token() {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(include_str!("../openapi/admin-api.yaml")).expect("valid YAML");
        for endpoint in admin::ALL {
            assert_eq!(endpoint.auth, Auth::AdminToken, "{}", endpoint.path);
            assert!(endpoint.path.starts_with("/admin/v1/"), "{}", endpoint.path);
            let op = &doc["paths"][endpoint.path][endpoint.method.as_str().to_ascii_lowercase()];
            let schemes: Vec<&str> = op["security"]
                .as_sequence()
                .expect("security")
                .iter()
                .filter_map(|s| s.as_mapping())
                .flat_map(|m| m.keys().filter_map(|k| k.as_str()))
                .collect();
            assert_eq!(
                schemes,
                ["adminToken"],
                "{} {}",
                endpoint.method.as_str(),
                endpoint.path
            );
        }
        assert!(
            doc["components"]["securitySchemes"]["adminToken"].is_mapping(),
            "admin-api.yaml defines the adminToken scheme"
        );
        for endpoint in client::ALL
            .iter()
            .chain(ops::ALL)
            .chain(federation::ALL)
            .chain(local_ui::ALL)
        {
            assert!(!endpoint.path.starts_with("/admin"), "{}", endpoint.path);
            assert_ne!(endpoint.auth, Auth::AdminToken, "{}", endpoint.path);
        }
    }
}
