//! The messenger's state at rest: one file per profile, sealed with a key derived from
//! the user's passphrase (see [`crate::sealed`]: Argon2id, XChaCha20-Poly1305, random
//! salt in the header), replaced atomically on every change (temporary file, fsync,
//! rename; mode 0600).
//!
//! The sealed plaintext is an 8-byte big-endian generation number followed by the JSON
//! of [`StoredState`]. Several processes may use one store (`parley listen` in one
//! terminal, `parley send` in another): each operation takes an exclusive lock on a
//! `.lock` file beside the store, re-reads the store if its generation moved, and writes
//! the next generation before releasing the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parley_specs::{Base64Bytes, DeviceId, GroupId, ServerName, UserId};
use serde::{Deserialize, Serialize};

use super::commits::PendingCommit;
use super::directory::PinnedKey;
use super::error::MessengerError;
use super::history::Conversation;
use super::key_backup::{LocalBackup, RestoreState};
use super::safety::Contact;
use super::transparency::TransparencyState;
use crate::sealed::{SealError, SealKey, write_private};

/// Version of the JSON layout inside the sealed file.
const STORE_FORMAT: u32 = 1;
/// How long an operation waits for another process to release the store.
const LOCK_WAIT: Duration = Duration::from_secs(60);
const LOCK_POLL: Duration = Duration::from_millis(50);

/// Everything a device keeps, besides its MLS storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppState {
    pub(crate) user_id: UserId,
    pub(crate) device_id: DeviceId,
    /// The device's public signature key; the key pair itself is in the MLS storage.
    pub(crate) signature_key: Base64Bytes,
    /// The last inbox entry processed; entries up to it are never processed again.
    pub(crate) inbox_cursor: i64,
    pub(crate) conversations: BTreeMap<GroupId, Conversation>,
    /// Contacts whose safety number was verified.
    pub(crate) contacts: BTreeMap<UserId, Contact>,
    /// Users who asked to leave a group; this device removes them when it can.
    pub(crate) leave_requests: BTreeMap<GroupId, BTreeSet<UserId>>,
    /// Commits sent to a hub whose answer was not received (see `groups.rs`).
    pub(crate) pending_commits: BTreeMap<GroupId, PendingCommit>,
    /// The key each server signed its users' device lists with when this device first
    /// saw one (see `directory.rs`).
    #[serde(default)]
    pub(crate) server_keys: BTreeMap<ServerName, PinnedKey>,
    /// Each group's metadata key (its name and topic are encrypted under it; see `roles.rs`).
    #[serde(default)]
    pub(crate) group_keys: BTreeMap<GroupId, Base64Bytes>,
    /// Users whose signed `leave` message this device saw, per group: a member who is not
    /// an admin may commit their removal (see `roles.rs`).
    #[serde(default)]
    pub(crate) announced_leaves: BTreeMap<GroupId, BTreeSet<UserId>>,
    /// The key backup this device writes (see `key_backup.rs`), when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_backup: Option<LocalBackup>,
    /// How far an interrupted restore got (see `key_backup.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restore: Option<RestoreState>,
    /// Key transparency: epochs seen, this account's checked history (`transparency.rs`).
    #[serde(default)]
    pub(crate) transparency: TransparencyState,
}

/// The JSON sealed in the store file.
#[derive(Serialize, Deserialize)]
struct StoredState {
    format: u32,
    app: AppState,
    /// The openmls storage: private keys, group secrets and trees.
    mls: Vec<(Base64Bytes, Base64Bytes)>,
}

/// What a store file holds, decoded.
pub(crate) struct Loaded {
    pub(crate) generation: u64,
    pub(crate) app: AppState,
    pub(crate) mls: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The store file of one device and the key that seals it.
pub(crate) struct Store {
    path: PathBuf,
    lock_path: PathBuf,
    passphrase: Vec<u8>,
    key: Option<SealKey>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.passphrase.iter_mut().for_each(|b| *b = 0);
    }
}

/// Holds the store's lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl Store {
    pub(crate) fn new(path: PathBuf, passphrase: &[u8]) -> Self {
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        Self {
            path,
            lock_path: PathBuf::from(lock_path),
            passphrase: passphrase.to_vec(),
            key: None,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> MessengerError {
        MessengerError::store(&self.path, reason)
    }

    /// Waits (up to a minute) until no other process holds the store, then holds it.
    pub(crate) async fn lock(&self) -> Result<StoreLock, MessengerError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| self.error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.lock_path)
            .map_err(|e| self.error(format!("cannot open {}: {e}", self.lock_path.display())))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(StoreLock { _file: file }),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    tokio::time::sleep(LOCK_POLL).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(MessengerError::StoreBusy {
                        path: self.path.clone(),
                        seconds: LOCK_WAIT.as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(self.error(format!("cannot lock {}: {e}", self.lock_path.display())));
                }
            }
        }
    }

    /// Reads and decrypts the store; `None` when there is no store file yet.
    /// When `known_generation` is the file's generation, the state is not decoded again
    /// (`Some` with `app: None`).
    pub(crate) fn read(&mut self, known_generation: Option<u64>) -> Result<Option<ReadOutcome>, MessengerError> {
        let sealed = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(format!("cannot read: {e}"))),
        };
        let key = match self.key.take() {
            Some(key) if key.fits(&sealed) => key,
            _ => SealKey::for_sealed(&self.passphrase, &sealed).map_err(|e| self.seal_error(e))?,
        };
        let plaintext = key.open(&sealed).map_err(|e| self.seal_error(e))?;
        // Only a key that opened the file is kept to seal the next generation.
        self.key = Some(key);
        let (generation, json) = plaintext
            .split_first_chunk::<8>()
            .map(|(generation, json)| (u64::from_be_bytes(*generation), json))
            .ok_or_else(|| self.error("the decrypted store is truncated"))?;
        if known_generation == Some(generation) {
            return Ok(Some(ReadOutcome::Unchanged));
        }
        let stored: StoredState =
            serde_json::from_slice(json).map_err(|e| self.error(format!("the decrypted store is damaged: {e}")))?;
        if stored.format != STORE_FORMAT {
            return Err(self.error(format!(
                "store format {} is not known to this version (it knows {STORE_FORMAT})",
                stored.format
            )));
        }
        Ok(Some(ReadOutcome::Changed(Box::new(Loaded {
            generation,
            app: stored.app,
            mls: stored.mls.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
        }))))
    }

    /// Seals and writes the state as `generation`. Needs the lock.
    pub(crate) fn write(
        &mut self,
        _lock: &StoreLock,
        generation: u64,
        app: &AppState,
        mls: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), MessengerError> {
        let stored = StoredState {
            format: STORE_FORMAT,
            app: app.clone(),
            mls: mls.into_iter().map(|(k, v)| (Base64Bytes(k), Base64Bytes(v))).collect(),
        };
        let mut plaintext = generation.to_be_bytes().to_vec();
        serde_json::to_writer(&mut plaintext, &stored).map_err(|e| self.error(format!("cannot encode: {e}")))?;
        let key = match self.key.take() {
            Some(key) => key,
            None => SealKey::new(&self.passphrase).map_err(|e| self.seal_error(e))?,
        };
        let sealed = key.seal(&plaintext);
        plaintext.iter_mut().for_each(|b| *b = 0);
        self.key = Some(key);
        let sealed = sealed.map_err(|e| self.seal_error(e))?;
        write_private(&self.path, &sealed).map_err(|e| self.seal_error(e))
    }

    fn seal_error(&self, err: SealError) -> MessengerError {
        match err {
            SealError::WrongPassphraseOrTampered => MessengerError::WrongPassphrase {
                path: self.path.clone(),
            },
            other => self.error(other),
        }
    }
}

/// What [`Store::read`] found.
pub(crate) enum ReadOutcome {
    /// The file holds the generation the caller already has.
    Unchanged,
    /// The file holds another generation.
    Changed(Box<Loaded>),
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn state() -> AppState {
        AppState {
            user_id: UserId::parse("ann@a.example").expect("user"),
            device_id: DeviceId::parse("DEV1").expect("device"),
            signature_key: Base64Bytes(vec![1, 2, 3]),
            inbox_cursor: 42,
            conversations: BTreeMap::new(),
            contacts: BTreeMap::new(),
            leave_requests: BTreeMap::new(),
            pending_commits: BTreeMap::new(),
            server_keys: BTreeMap::new(),
            group_keys: BTreeMap::new(),
            announced_leaves: BTreeMap::new(),
            key_backup: None,
            restore: None,
            transparency: Default::default(),
        }
    }

    fn mls() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![(b"key".to_vec(), b"private key material, very secret".to_vec())]
    }

    fn changed(outcome: Option<ReadOutcome>) -> Loaded {
        match outcome {
            Some(ReadOutcome::Changed(loaded)) => *loaded,
            Some(ReadOutcome::Unchanged) => panic!("expected a changed store, got unchanged"),
            None => panic!("expected a store, found none"),
        }
    }

    #[tokio::test]
    async fn round_trip_generations_and_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("profile").join("messenger.sealed");
        let mut store = Store::new(path.clone(), b"correct horse");
        assert!(store.read(None).expect("read").is_none(), "no store yet");
        let lock = store.lock().await.expect("lock");
        store.write(&lock, 1, &state(), mls()).expect("write");
        store.write(&lock, 2, &state(), mls()).expect("rewrite");
        drop(lock);
        let raw = std::fs::read(&path).expect("raw");
        assert!(!raw.windows(6).any(|w| w == b"secret"), "plaintext on disk");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );

        // Another process (a fresh Store) reads what was written.
        let mut other = Store::new(path.clone(), b"correct horse");
        let loaded = changed(other.read(None).expect("read"));
        assert_eq!(loaded.generation, 2);
        assert_eq!(loaded.app.inbox_cursor, 42);
        assert_eq!(loaded.mls, mls());
        assert!(matches!(
            other.read(Some(2)).expect("read"),
            Some(ReadOutcome::Unchanged)
        ));
        assert!(matches!(
            other.read(Some(1)).expect("read"),
            Some(ReadOutcome::Changed(_))
        ));
    }

    #[tokio::test]
    async fn wrong_passphrase_and_tampering_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("messenger.sealed");
        let mut store = Store::new(path.clone(), b"correct horse");
        let lock = store.lock().await.expect("lock");
        store.write(&lock, 1, &state(), mls()).expect("write");
        drop(lock);

        let mut wrong = Store::new(path.clone(), b"battery staple");
        let err = wrong.read(None).err().expect("wrong passphrase");
        assert!(matches!(err, MessengerError::WrongPassphrase { .. }), "{err}");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");

        let mut raw = std::fs::read(&path).expect("raw");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).expect("tamper");
        let mut right = Store::new(path.clone(), b"correct horse");
        assert!(matches!(right.read(None), Err(MessengerError::WrongPassphrase { .. })));
        // Even with the key cached from an earlier read.
        assert!(matches!(store.read(None), Err(MessengerError::WrongPassphrase { .. })));

        std::fs::write(&path, b"{\"not\": \"sealed\"}").expect("replace");
        let err = right.read(None).err().expect("not sealed");
        assert!(err.to_string().contains("not a Parley sealed file"), "{err}");
    }

    #[tokio::test]
    async fn one_process_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("messenger.sealed");
        let first = Store::new(path.clone(), b"correct horse");
        let second = Store::new(path, b"correct horse");
        let held = first.lock().await.expect("lock");
        let waited = tokio::time::timeout(Duration::from_millis(300), second.lock()).await;
        assert!(waited.is_err(), "the second lock waits while the first is held");
        drop(held);
        let taken = tokio::time::timeout(Duration::from_secs(5), second.lock()).await;
        assert!(matches!(taken, Ok(Ok(_))), "and gets it once released");
    }
}
