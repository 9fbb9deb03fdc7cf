//! Key transparency: each homeserver publishes its users' device lists in an auditable
//! key directory (an append-only Merkle tree, `akd`), one epoch at a time, and signs each
//! epoch's root with its federation key. Clients check lookup proofs of their contacts'
//! lists and key-history proofs of their own account against signed roots; servers check
//! append-only proofs between the roots of the servers they federate with. See
//! `protocol.md`, "Key transparency".

use serde::{Deserialize, Serialize};

use crate::keys_api::{ServerSignature, ServerVerifyKey};
use crate::{Base64Bytes, ServerName};

/// One epoch of a server's key directory, as the server signs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRoot {
    /// The server whose directory this is.
    pub server: ServerName,
    /// The epoch (1 for the first publication; consecutive).
    pub epoch: u64,
    /// The root hash of the directory's tree at this epoch (32 bytes).
    pub root_hash: Base64Bytes,
    /// The directory's VRF public key (32 bytes): it maps user ids to tree labels, and
    /// lookup proofs verify against it. It never changes for a directory.
    pub vrf_public_key: Base64Bytes,
    /// When the server published the epoch (Unix milliseconds).
    pub published_at_ms: i64,
}

/// A root signed by its server's federation key, over the canonical JSON of
/// `{"directory_root": <DirectoryRoot>, "signed_at_ms": <ms>}`. Two valid signed roots
/// of one server for one epoch that differ prove the server showed two logs (a split view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRoot {
    pub root: DirectoryRoot,
    pub server_signature: ServerSignature,
}

/// A lookup proof of one user's device list, with the signed root it verifies against.
/// It travels with every device list (`GET .../users/{user_id}/devices`, client and
/// federation APIs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyLookup {
    /// The user's server's root the proof verifies against.
    pub root: SignedRoot,
    /// The lookup proof (akd `LookupProof`, protobuf).
    pub proof: Base64Bytes,
    /// For another server's user, in the client API only: the root of the same epoch
    /// that the client's own server received when it audited the user's server. A client
    /// refuses the list when the two differ (a split view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessed: Option<SignedRoot>,
}

/// Answer of `GET /client/v1/transparency/history?since_version=N`: the key-history proof
/// of the caller's own account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyHistory {
    /// The latest signed root; the proof verifies against it.
    pub root: SignedRoot,
    /// The public key that signed the roots (clients cannot fetch key documents).
    pub server_key: ServerVerifyKey,
    /// The key-history proof (akd `HistoryProof`, protobuf) of the versions from
    /// `since_version` on; absent when the account was never published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Base64Bytes>,
    /// How many of the most recent versions the proof covers.
    pub versions: u64,
    /// The signed root of each epoch in which a covered version was published, for the
    /// time it appeared.
    pub update_roots: Vec<SignedRoot>,
}

/// Answer of `GET /federation/v1/transparency/audit?from_epoch=A&to_epoch=B`: the signed
/// roots of epochs `A..=B` and the append-only proof from `A` to `B`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyAudit {
    /// One per epoch, `from_epoch` first.
    pub roots: Vec<SignedRoot>,
    /// The akd `AppendOnlyProof` (protobuf) from `from_epoch` to `to_epoch`; absent when
    /// they are equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Base64Bytes>,
}

/// Query of the audit endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Signed (the documents' `int64`): a negative value is refused as `invalid_param`.
    pub from_epoch: i64,
    pub to_epoch: i64,
}

/// At most this many epochs per audit answer.
pub const MAX_AUDIT_EPOCHS: u64 = 64;

/// Query of the history endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// The first version the caller has not verified yet (1 for all; signed, the
    /// documents' `int64`: a negative value is refused as `invalid_param`).
    #[serde(default = "first_version")]
    pub since_version: i64,
}

fn first_version() -> i64 {
    1
}

/// At most this many versions per history answer; a client that is further behind asks again.
pub const MAX_HISTORY_VERSIONS: u64 = 256;

/// One failed audit of another server, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFailure {
    pub server: ServerName,
    pub epoch: Option<u64>,
    pub reason: String,
    /// RFC 3339.
    pub detected_at: String,
}

/// Answer of `GET /admin/v1/transparency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyStatus {
    /// This server's latest published epoch (0 before the first).
    pub epoch: u64,
    /// Users with a change not yet published.
    pub pending_users: u64,
    /// Each audited server's latest audited epoch.
    pub audited: Vec<AuditedServer>,
    /// The most recent failed audits, newest first.
    pub failures: Vec<AuditFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditedServer {
    pub server: ServerName,
    pub epoch: u64,
}
