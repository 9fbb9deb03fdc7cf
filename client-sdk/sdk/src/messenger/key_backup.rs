//! The messenger's key backup (see [`crate::backup`]): what goes into the chunks, the
//! incremental upload, and the restore that merges a backup into this device's history.
//!
//! Merging never overwrites: a message already in the local history (same sequence
//! number) stays as it is, settings already set stay, read markers only move forward. So
//! an older backup cannot take back newer local history, and restoring twice adds
//! nothing. A restore records which chunks of which manifest it has merged (saved with
//! the merged history, about every second), so an interrupted restore continues where it
//! stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use parley_specs::key_backup_api::ChunkList;
use parley_specs::{Base64Bytes, ErrorCode, GroupId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::directory::PinnedKey;
use super::history::{Conversation, HistoryMessage};
use super::safety::Contact;
use super::store::{AppState, StoreLock};
use super::{Messenger, MessengerError, Result};
use crate::Error;
use crate::backup::{
    BackupError, BackupKey, BackupReport, BackupSecret, BackupStatus, HISTORY_RANGE, KEYS_CHUNK, Kdf, KeyParams,
    MANIFEST_CHUNK, RestoreProgress, RestoreReport, STATE_CHUNK, sha256_hex,
};

/// How often a restore saves what it merged so far.
const RESTORE_SAVE_EVERY: Duration = Duration::from_secs(1);
/// Backups tried again when another device wrote the backup meanwhile.
const BACKUP_ATTEMPTS: usize = 3;

/// The backup this device writes, kept in its sealed store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LocalBackup {
    /// The root key (never leaves the sealed store but encrypted under itself).
    key: Base64Bytes,
    params: KeyParams,
    /// The manifest version this device last wrote or merged.
    manifest_version: i64,
    /// What each chunk held when this device last wrote or read it.
    chunks: BTreeMap<String, ChunkRecord>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    last_backup_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkRecord {
    version: i64,
    /// SHA-256 of the plaintext ("" when unknown): unchanged content is not uploaded.
    plain_sha256: String,
    /// SHA-256 and size of the stored (encrypted) chunk, as the manifest lists them.
    sha256: String,
    size: usize,
}

/// How far a restore got: the chunks of one manifest merged already.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RestoreState {
    manifest_sha256: String,
    done: BTreeSet<String>,
}

/// The `manifest` chunk.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    user_id: UserId,
    #[serde(with = "time::serde::rfc3339")]
    written_at: OffsetDateTime,
    chunks: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    version: i64,
    size: usize,
    sha256: String,
}

/// The `state` chunk.
#[derive(Debug, Serialize, Deserialize)]
struct StateChunk {
    conversations: BTreeMap<GroupId, ConversationSettings>,
    contacts: BTreeMap<UserId, Contact>,
    server_keys: BTreeMap<ServerName, PinnedKey>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConversationSettings {
    #[serde(with = "time::serde::rfc3339")]
    joined_at: OffsetDateTime,
    timer_secs: Option<u64>,
    read_up_to: i64,
    /// The group's metadata key (its name, topic and timer are sealed under it), which a
    /// device joining by itself gets from no Welcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group_key: Option<Base64Bytes>,
}

/// A history chunk: the messages of one conversation in one range of sequence numbers.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryChunk {
    group_id: GroupId,
    range: i64,
    messages: Vec<HistoryMessage>,
}

fn altered(chunk_id: &str, reason: impl Into<String>) -> MessengerError {
    BackupError::Altered {
        chunk_id: chunk_id.to_owned(),
        reason: reason.into(),
    }
    .into()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| BackupError::Format(format!("cannot encode: {e}")).into())
}

/// The plaintext of every chunk the state gives (all but `keys` and `manifest`), by id.
fn chunk_plaintexts(state: &AppState, key: &BackupKey) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut chunks = BTreeMap::new();
    let settings = StateChunk {
        conversations: state
            .conversations
            .iter()
            .map(|(id, c)| {
                (
                    id.clone(),
                    ConversationSettings {
                        joined_at: c.joined_at,
                        timer_secs: c.timer_secs,
                        read_up_to: c.read_up_to,
                        group_key: state.group_keys.get(id).cloned(),
                    },
                )
            })
            .collect(),
        contacts: state.contacts.clone(),
        server_keys: state.server_keys.clone(),
    };
    chunks.insert(STATE_CHUNK.to_owned(), encode(&settings)?);
    for (group_id, conversation) in &state.conversations {
        let mut at = 0;
        let messages = &conversation.messages;
        while at < messages.len() {
            let range = messages[at].seq.div_euclid(HISTORY_RANGE);
            let end = messages[at..]
                .iter()
                .position(|m| m.seq.div_euclid(HISTORY_RANGE) != range)
                .map_or(messages.len(), |n| at + n);
            let chunk = HistoryChunk {
                group_id: group_id.clone(),
                range,
                messages: messages[at..end].to_vec(),
            };
            chunks.insert(key.history_chunk_id(group_id.as_str(), range), encode(&chunk)?);
            at = end;
        }
    }
    Ok(chunks)
}

impl Messenger {
    /// Turns the key backup on for this device with `secret`, making a new backup of the
    /// account, or joining the account's existing one when `secret` opens it
    /// ([`BackupError::Exists`] when it does not). Uploads nothing but the `keys` chunk:
    /// call [`Messenger::backup_now`] next.
    pub async fn enable_backup(&mut self, secret: &BackupSecret) -> Result<()> {
        let list = self.client.list_backup_chunks().await?;
        let user = self.state.user_id.clone();
        let existing = if list.chunks.iter().any(|c| c.chunk_id == KEYS_CHUNK) {
            Some(self.fetch_key_params().await?)
        } else {
            None
        };
        let (key, params) = match existing {
            Some(params) => match BackupKey::open(&user, secret, &params) {
                Ok(key) => (key, params),
                Err(BackupError::WrongKey(_)) => return Err(BackupError::Exists.into()),
                Err(e) => return Err(e.into()),
            },
            None => {
                let (key, params) = BackupKey::create(&user, secret)?;
                self.client
                    .put_backup_chunk(KEYS_CHUNK, 0, encode(&params)?)
                    .await
                    .map_err(|e| match e.code() {
                        Some(ErrorCode::BackupVersionConflict) => BackupError::Exists.into(),
                        _ => MessengerError::from(e),
                    })?;
                (key, params)
            }
        };
        let lock = self.begin().await?;
        self.state.key_backup = Some(LocalBackup {
            key: Base64Bytes(key.to_bytes()),
            params,
            manifest_version: 0,
            chunks: BTreeMap::new(),
            last_backup_at: None,
        });
        let result = self.save(&lock);
        self.end(lock, result)
    }

    /// Turns the key backup off and deletes the account's backup from the server.
    pub async fn disable_backup(&mut self) -> Result<()> {
        self.client.delete_backup().await?;
        let lock = self.begin().await?;
        self.state.key_backup = None;
        let result = self.save(&lock);
        self.end(lock, result)
    }

    /// Whether this device backs up, and what the account's backup takes on the server.
    pub async fn backup_status(&mut self) -> Result<BackupStatus> {
        let list = self.client.list_backup_chunks().await?;
        let lock = self.begin().await?;
        let result = self.status_locked(&list);
        self.end(lock, result)
    }

    fn status_locked(&self, list: &ChunkList) -> Result<BackupStatus> {
        let local = self.state.key_backup.as_ref();
        let pending_changes = match local {
            Some(local) => {
                let key = local_key(local)?;
                let plains = chunk_plaintexts(&self.state, &key)?;
                plains
                    .iter()
                    .any(|(id, plain)| local.chunks.get(id).is_none_or(|r| r.plain_sha256 != sha256_hex(plain)))
            }
            None => false,
        };
        Ok(BackupStatus {
            enabled: local.is_some(),
            key_kind: local.map(|l| match l.params.kdf {
                Kdf::RecoveryKey => "recovery_key",
                Kdf::Argon2id { .. } => "passphrase",
            }),
            last_backup_at: local.and_then(|l| l.last_backup_at),
            chunks: list.chunks.len(),
            used_bytes: list.used_bytes,
            quota_bytes: list.quota_bytes,
            pending_changes,
        })
    }

    /// Uploads the chunks whose content changed since this device's last backup, then
    /// the manifest. Chunks another device of the account wrote since are downloaded,
    /// checked and merged first. [`BackupError::NotEnabled`] when backup is off here.
    pub async fn backup_now(&mut self) -> Result<BackupReport> {
        let mut attempt = 1;
        loop {
            match self.backup_once().await {
                Err(e) if e.code() == Some(ErrorCode::BackupVersionConflict) && attempt < BACKUP_ATTEMPTS => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Like [`Messenger::backup_now`] when backup is enabled on this device; nothing
    /// otherwise.
    pub async fn backup_if_enabled(&mut self) -> Result<Option<BackupReport>> {
        let lock = self.begin().await?;
        let enabled = self.state.key_backup.is_some();
        self.end(lock, Ok(()))?;
        if enabled {
            self.backup_now().await.map(Some)
        } else {
            Ok(None)
        }
    }

    async fn backup_once(&mut self) -> Result<BackupReport> {
        let list = self.client.list_backup_chunks().await?;
        let lock = self.begin().await?;
        let result = self.backup_locked(&lock, &list).await;
        self.end(lock, result)
    }

    async fn backup_locked(&mut self, lock: &StoreLock, list: &ChunkList) -> Result<BackupReport> {
        let mut local = self.state.key_backup.clone().ok_or(BackupError::NotEnabled)?;
        let key = local_key(&local)?;
        let user = self.state.user_id.clone();
        let remote: BTreeMap<&str, i64> = list.chunks.iter().map(|c| (c.chunk_id.as_str(), c.version)).collect();
        if !remote.contains_key(KEYS_CHUNK) {
            // Another device disabled the backup.
            self.state.key_backup = None;
            self.save(lock)?;
            return Err(BackupError::NoBackup.into());
        }
        let mut report = BackupReport::default();
        let remote_manifest = remote.get(MANIFEST_CHUNK).copied().unwrap_or(0);
        if remote_manifest != 0 && remote_manifest != local.manifest_version {
            // Another device wrote the backup since: merge what it wrote.
            let (version, manifest, _) = self.fetch_manifest(&key).await?;
            for (id, entry) in &manifest.chunks {
                if local.chunks.get(id).is_some_and(|r| r.version == entry.version) {
                    continue;
                }
                let plain = self.fetch_chunk(&key, id, entry).await?;
                self.merge_chunk(id, &plain)?;
                report.merged_chunks += 1;
                local.chunks.insert(id.clone(), record(entry, &plain));
            }
            local.manifest_version = version;
        }
        let mut entries = BTreeMap::new();
        for (id, plain) in chunk_plaintexts(&self.state, &key)? {
            let on_server = remote.get(id.as_str()).copied().unwrap_or(0);
            let plain_sha256 = sha256_hex(&plain);
            if let Some(rec) = local.chunks.get(&id)
                && rec.version == on_server
                && rec.plain_sha256 == plain_sha256
            {
                entries.insert(id, entry_of(rec));
                continue;
            }
            let sealed = key.seal(&user, &id, on_server + 1, &plain);
            let rec = ChunkRecord {
                version: on_server + 1,
                plain_sha256,
                sha256: sha256_hex(&sealed),
                size: sealed.len(),
            };
            report.uploaded_chunks += 1;
            report.uploaded_bytes += sealed.len();
            self.client.put_backup_chunk(&id, on_server, sealed).await?;
            entries.insert(id.clone(), entry_of(&rec));
            local.chunks.insert(id, rec);
        }
        report.total_chunks = entries.len() + 2;
        if report.uploaded_chunks == 0 && report.merged_chunks == 0 && remote_manifest == local.manifest_version {
            // Nothing changed since the manifest this device wrote or read: nothing to write.
            if remote_manifest != 0 {
                return Ok(report);
            }
        }
        let manifest = Manifest {
            format: 1,
            user_id: user.clone(),
            written_at: OffsetDateTime::now_utc(),
            chunks: entries,
        };
        let sealed = key.seal(&user, MANIFEST_CHUNK, local.manifest_version + 1, &encode(&manifest)?);
        report.uploaded_chunks += 1;
        report.uploaded_bytes += sealed.len();
        self.client
            .put_backup_chunk(MANIFEST_CHUNK, local.manifest_version, sealed)
            .await?;
        local.manifest_version += 1;
        local.last_backup_at = Some(manifest.written_at);
        self.state.key_backup = Some(local);
        self.save(lock)?;
        Ok(report)
    }

    /// Restores the account's backup into this device's history (see the module
    /// documentation: nothing local is overwritten), then keeps backing up to it from
    /// this device. `secret` is checked before anything is changed: a wrong key
    /// ([`BackupError::WrongKey`]) or another account's backup
    /// ([`BackupError::OtherAccount`]) leaves the device as it was. A chunk the server
    /// altered stops the restore ([`BackupError::Altered`], naming it); what was merged
    /// before it came from intact chunks. `on_progress` is called after each chunk;
    /// returning `Break` stops the restore there (as an interruption would), and running
    /// it again continues.
    pub async fn restore_backup(
        &mut self,
        secret: &BackupSecret,
        mut on_progress: impl FnMut(&RestoreProgress) -> ControlFlow<()>,
    ) -> Result<RestoreReport> {
        let user = self.state.user_id.clone();
        let list = self.client.list_backup_chunks().await?;
        if !list.chunks.iter().any(|c| c.chunk_id == KEYS_CHUNK) {
            return Err(BackupError::NoBackup.into());
        }
        let params = self.fetch_key_params().await?;
        let key = BackupKey::open(&user, secret, &params)?;
        let (manifest_version, manifest, manifest_sha256) = self.fetch_manifest(&key).await?;

        let lock = self.begin().await?;
        let mut progress_state = match self.state.restore.take() {
            Some(r) if r.manifest_sha256 == manifest_sha256 => r,
            _ => RestoreState {
                manifest_sha256,
                done: BTreeSet::new(),
            },
        };
        let mut progress = RestoreProgress {
            done: progress_state.done.len(),
            total: manifest.chunks.len(),
            resumed: progress_state.done.len(),
            bytes: 0,
        };
        // Settings first, then history in id order.
        let mut order: Vec<(&String, &ManifestEntry)> = manifest.chunks.iter().collect();
        order.sort_by_key(|(id, _)| (id.as_str() != STATE_CHUNK, id.as_str()));
        let mut records = BTreeMap::new();
        let mut messages_added = 0;
        let mut last_save = Instant::now();
        let mut complete = true;
        let mut failure = None;
        for (id, entry) in order {
            if progress_state.done.contains(id) {
                records.insert(id.clone(), record(entry, b""));
                continue;
            }
            let plain = match self.fetch_chunk(&key, id, entry).await {
                Ok(plain) => plain,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            messages_added += self.merge_chunk(id, &plain)?;
            records.insert(id.clone(), record(entry, &plain));
            progress_state.done.insert(id.clone());
            progress.done += 1;
            progress.bytes += entry.size;
            let stop = on_progress(&progress).is_break();
            if stop || last_save.elapsed() >= RESTORE_SAVE_EVERY {
                self.state.restore = Some(progress_state.clone());
                self.save(&lock)?;
                last_save = Instant::now();
            }
            if stop {
                complete = progress.done == progress.total;
                break;
            }
        }
        let conversations = self.state.conversations.len();
        if let Some(e) = failure {
            self.state.restore = Some(progress_state);
            let saved = self.save(&lock);
            return self.end(lock, saved.and(Err(e)));
        }
        if complete {
            self.state.restore = None;
            if self.state.key_backup.is_none() {
                // This device continues the backup it restored.
                self.state.key_backup = Some(LocalBackup {
                    key: Base64Bytes(key.to_bytes()),
                    params,
                    manifest_version,
                    chunks: records,
                    last_backup_at: None,
                });
            }
        } else {
            self.state.restore = Some(progress_state);
        }
        let result = self.save(&lock).map(|()| RestoreReport {
            complete,
            progress,
            conversations,
            messages_added,
        });
        self.end(lock, result)
    }

    async fn fetch_key_params(&self) -> Result<KeyParams> {
        let (_, bytes) = self
            .client
            .get_backup_chunk(KEYS_CHUNK)
            .await
            .map_err(not_found_is_none)?;
        serde_json::from_slice(&bytes).map_err(|e| altered(KEYS_CHUNK, format!("not a keys chunk: {e}")))
    }

    /// The manifest, checked: its version, contents and the SHA-256 of its stored bytes.
    async fn fetch_manifest(&self, key: &BackupKey) -> Result<(i64, Manifest, String)> {
        let user = &self.state.user_id;
        let (version, sealed) = match self.client.get_backup_chunk(MANIFEST_CHUNK).await {
            Ok(found) => found,
            // Enabled, never backed up: an empty backup.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                let empty = Manifest {
                    format: 1,
                    user_id: user.clone(),
                    written_at: OffsetDateTime::UNIX_EPOCH,
                    chunks: BTreeMap::new(),
                };
                return Ok((0, empty, String::new()));
            }
            Err(e) => return Err(e.into()),
        };
        let plain = key
            .open_chunk(user, MANIFEST_CHUNK, version, &sealed)
            .ok_or_else(|| altered(MANIFEST_CHUNK, "it does not decrypt with the backup key"))?;
        let manifest: Manifest =
            serde_json::from_slice(&plain).map_err(|e| altered(MANIFEST_CHUNK, format!("not a manifest: {e}")))?;
        if &manifest.user_id != user {
            return Err(BackupError::OtherAccount {
                backup_user: manifest.user_id,
                user: user.clone(),
            }
            .into());
        }
        Ok((version, manifest, sha256_hex(&sealed)))
    }

    /// A chunk the manifest lists, checked against it and decrypted.
    async fn fetch_chunk(&self, key: &BackupKey, id: &str, entry: &ManifestEntry) -> Result<Vec<u8>> {
        let (version, sealed) = match self.client.get_backup_chunk(id).await {
            Ok(found) => found,
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                return Err(altered(id, "the manifest lists it but the server does not have it"));
            }
            Err(e) => return Err(e.into()),
        };
        if version != entry.version {
            return Err(altered(
                id,
                format!(
                    "the server has version {version}, the manifest lists version {}",
                    entry.version
                ),
            ));
        }
        if sha256_hex(&sealed) != entry.sha256 {
            return Err(altered(id, "its SHA-256 differs from the manifest's"));
        }
        key.open_chunk(&self.state.user_id, id, version, &sealed)
            .ok_or_else(|| altered(id, "it does not decrypt with the backup key"))
    }

    /// Merges one chunk's plaintext into the state; returns the messages added.
    fn merge_chunk(&mut self, id: &str, plain: &[u8]) -> Result<usize> {
        let now = OffsetDateTime::now_utc();
        if id == STATE_CHUNK {
            let chunk: StateChunk =
                serde_json::from_slice(plain).map_err(|e| altered(id, format!("not a state chunk: {e}")))?;
            for (group_id, settings) in chunk.conversations {
                if let Some(key) = settings.group_key {
                    self.state.group_keys.entry(group_id.clone()).or_insert(key);
                }
                let conversation = self
                    .state
                    .conversations
                    .entry(group_id)
                    .or_insert_with(|| restored_conversation(settings.joined_at));
                conversation.read_up_to = conversation.read_up_to.max(settings.read_up_to);
                if conversation.timer_secs.is_none() {
                    conversation.timer_secs = settings.timer_secs;
                }
            }
            for (user, contact) in chunk.contacts {
                self.state.contacts.entry(user).or_insert(contact);
            }
            for (server, pinned) in chunk.server_keys {
                self.state.server_keys.entry(server).or_insert(pinned);
            }
            return Ok(0);
        }
        if !id.starts_with("h-") {
            // A chunk of a newer version of the format: left alone.
            return Ok(0);
        }
        let chunk: HistoryChunk =
            serde_json::from_slice(plain).map_err(|e| altered(id, format!("not a history chunk: {e}")))?;
        let conversation = self
            .state
            .conversations
            .entry(chunk.group_id)
            .or_insert_with(|| restored_conversation(now));
        let mut added = 0;
        for message in chunk.messages {
            if message.expired(now)
                || conversation
                    .messages
                    .binary_search_by_key(&message.seq, |m| m.seq)
                    .is_ok()
            {
                continue;
            }
            conversation.record(message);
            added += 1;
        }
        Ok(added)
    }
}

/// A conversation known from a backup only: this device is not in the group yet (it
/// joins through the new-device flow).
fn restored_conversation(joined_at: OffsetDateTime) -> Conversation {
    let mut conversation = Conversation::new(joined_at);
    conversation.member = false;
    conversation
}

fn local_key(local: &LocalBackup) -> Result<BackupKey> {
    BackupKey::from_bytes(local.key.as_slice())
        .ok_or_else(|| BackupError::Format("the stored backup key is damaged".into()).into())
}

fn record(entry: &ManifestEntry, plain: &[u8]) -> ChunkRecord {
    ChunkRecord {
        version: entry.version,
        plain_sha256: if plain.is_empty() {
            String::new()
        } else {
            sha256_hex(plain)
        },
        sha256: entry.sha256.clone(),
        size: entry.size,
    }
}

fn entry_of(rec: &ChunkRecord) -> ManifestEntry {
    ManifestEntry {
        version: rec.version,
        size: rec.size,
        sha256: rec.sha256.clone(),
    }
}

fn not_found_is_none(e: Error) -> MessengerError {
    if e.code() == Some(ErrorCode::NotFound) {
        BackupError::NoBackup.into()
    } else {
        e.into()
    }
}

impl Messenger {
    /// Adds `messages` to the local history of `group_id` as if they had been received
    /// (creating the conversation if needed), in one save. For benchmarks of the backup
    /// (`parley-bench key-backup`), which need a long history without sending it.
    #[doc(hidden)]
    pub async fn import_history_for_benchmarks(
        &mut self,
        group_id: &GroupId,
        messages: Vec<HistoryMessage>,
    ) -> Result<()> {
        let lock = self.begin().await?;
        let now = OffsetDateTime::now_utc();
        let conversation = self
            .state
            .conversations
            .entry(group_id.clone())
            .or_insert_with(|| Conversation::new(now));
        for message in messages {
            conversation.record(message);
        }
        let result = self.save(&lock);
        self.end(lock, result)
    }
}
