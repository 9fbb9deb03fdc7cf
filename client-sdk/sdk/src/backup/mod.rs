//! Key backup: an end-to-end encrypted backup of what a person needs on a new device —
//! the conversation list with each conversation's settings, the message history,
//! verified contacts — kept as opaque, versioned chunks on the user's homeserver
//! (`specs/protocol.md`, "Key backup"). The server never holds the key.
//!
//! **Key.** A generated [`RecoveryKey`] (240 random bits, shown once as 48 base32
//! characters) or a passphrase the user chooses. A passphrase is stretched with Argon2id
//! (64 MiB, 3 passes, 1 lane; 16-byte random salt): every guess costs an attacker that
//! much. A recovery key is only hashed (SHA-256, then HKDF): with 2^240 possible keys,
//! guessing is hopeless however cheap one guess is, and restoring stays instant. Either
//! way HKDF-SHA256 (salt, info naming the account) gives the root key, and from it the
//! chunk encryption key, the key that names history chunks, and a 16-byte check value.
//!
//! **Chunks.** `keys` (in the clear: account, KDF, salt, check value), `manifest`,
//! `state` (conversations, their settings, contacts, pinned server keys) and one chunk
//! per conversation and range of 128 sequence numbers (`h-<16 hex>-<range>`, the hex
//! derived from the group id under the backup key). Every chunk but `keys` is
//! `0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305(JSON)` with the account, the chunk id and its
//! version as associated data. The manifest lists every chunk's id, version, size and
//! SHA-256: a chunk the server changed, swapped or rolled back is refused by name.
//!
//! **Incremental.** A device remembers the hash of each chunk's plaintext and uploads
//! only the chunks whose content changed, then the manifest. Sending a message uploads
//! nothing: backups run afterwards ([`Messenger::backup_now`](crate::messenger::Messenger::backup_now)).

mod crypto;

pub(crate) use crypto::{BackupKey, sha256_hex};
pub use crypto::{
    BackupSecret, Kdf, KeyParams, MIN_BACKUP_PASSPHRASE_CHARS, PASSPHRASE_LANES, PASSPHRASE_MEMORY_KIB,
    PASSPHRASE_PASSES, RecoveryKey,
};
use parley_specs::UserId;
use time::OffsetDateTime;

/// Sequence numbers per history chunk.
pub const HISTORY_RANGE: i64 = 128;
/// The chunk ids that are not history.
pub const KEYS_CHUNK: &str = "keys";
pub const MANIFEST_CHUNK: &str = "manifest";
pub const STATE_CHUNK: &str = "state";

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The key does not open this backup. Nothing was changed.
    #[error("wrong {0}: it does not open this account's backup (nothing was changed)")]
    WrongKey(&'static str),
    /// Not a recovery key as `parley backup enable` shows them.
    #[error("not a recovery key: it has 48 characters A-Z and 2-7, in groups of four")]
    MalformedRecoveryKey,
    /// The passphrase is too short.
    #[error("the backup passphrase is too short: use at least {0} characters")]
    WeakPassphrase(usize),
    /// The backup stored for this account names another account.
    #[error("the backup on the server belongs to {backup_user}, not to {user}: refused (nothing was changed)")]
    OtherAccount {
        /// The account the backup names.
        backup_user: UserId,
        /// This account.
        user: UserId,
    },
    /// A chunk does not match the manifest or does not decrypt: the server (or someone
    /// with its database) changed it.
    #[error("backup chunk {chunk_id} was altered on the server ({reason}): refused")]
    Altered {
        /// The chunk.
        chunk_id: String,
        /// What did not match.
        reason: String,
    },
    /// The account has no backup on its server.
    #[error("this account has no key backup on its server")]
    NoBackup,
    /// Backup is not enabled on this device.
    #[error("key backup is not enabled on this device (parley backup enable)")]
    NotEnabled,
    /// A backup exists already, made with another key.
    #[error("this account already has a key backup: restore it with its key (parley restore), or disable it first")]
    Exists,
    /// The data does not have the expected form.
    #[error("key backup: {0}")]
    Format(String),
}

/// Where a device's backup stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupStatus {
    /// Whether this device backs up.
    pub enabled: bool,
    /// `recovery_key` or `passphrase`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_kind: Option<&'static str>,
    /// When this device last finished a backup.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_backup_at: Option<OffsetDateTime>,
    /// Chunks stored on the server, their bytes, and the account's quota.
    pub chunks: usize,
    pub used_bytes: i64,
    pub quota_bytes: i64,
    /// Whether this device's history has changes not backed up yet.
    pub pending_changes: bool,
}

/// What one backup run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupReport {
    /// Chunks uploaded (the manifest included) and their bytes.
    pub uploaded_chunks: usize,
    pub uploaded_bytes: usize,
    /// Chunks the backup has in all.
    pub total_chunks: usize,
    /// Chunks another device of this account had written, merged first.
    pub merged_chunks: usize,
}

/// Progress of a restore, reported after each chunk.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RestoreProgress {
    /// Chunks done (restored now or by an earlier, interrupted run) and in all.
    pub done: usize,
    pub total: usize,
    /// Chunks an earlier run had restored already.
    pub resumed: usize,
    /// Bytes downloaded by this run.
    pub bytes: usize,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// Whether every chunk was restored (false: stopped early; run it again to continue).
    pub complete: bool,
    pub progress: RestoreProgress,
    /// Conversations in the backup, and messages added to this device's history
    /// (messages it had already are kept as they are).
    pub conversations: usize,
    pub messages_added: usize,
}
