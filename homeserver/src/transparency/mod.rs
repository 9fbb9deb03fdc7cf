//! Key transparency: this server's auditable key directory (the `akd` crate, stored in
//! PostgreSQL by `store::transparency`) and its audits of other servers' directories.
//!
//! - **Publishing** (`publish_pending`, every `epoch_interval_ms` on every process, one at a
//!   time under an advisory lock): the users marked pending by a device change (in the
//!   change's own transaction) are read with their devices' bound keys, those whose value
//!   changed are published as one epoch, and the pending rows are deleted in the same
//!   transaction as the epoch's records. The epoch's root is then signed with the
//!   federation key and stored, one signed root per epoch for good.
//! - **Proofs**: a lookup proof travels with every device list of a user of this server,
//!   a key-history proof answers a user about their own account, an append-only proof
//!   answers servers auditing this one.
//! - **Auditing** (`audit`): the roots of the servers this one federates with, checked.

pub mod audit;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use akd::errors::{AkdError, StorageError};
use akd::storage::types::ValueStateRetrievalFlag;
use akd::storage::{Database, StorageManager};
use akd::{AzksParallelismConfig, Directory, EpochHash, HistoryParams};
use parley_federation::transparency_root;
use parley_specs::keys_api::DeviceKey;
use parley_specs::transparency_api::{
    DirectoryRoot, MAX_AUDIT_EPOCHS, MAX_HISTORY_VERSIONS, SignedRoot, TransparencyAudit, TransparencyHistory,
    TransparencyLookup,
};
use parley_specs::{DeviceId, ErrorCode, UserId};
use parley_transparency::{DirectoryConfig, encode_audit_proof, encode_history_proof, encode_lookup_proof, label};

use crate::config::TransparencyConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::remote::{Remote, now_ms};
use crate::store;
use crate::store::transparency::DirectoryStore;

/// Users published in one epoch, at most; more wait for the next.
const MAX_USERS_PER_EPOCH: i64 = 50_000;
/// The advisory lock one publisher holds at a time (any fixed number of this schema's).
const PUBLISH_LOCK: i64 = 0x7061_726c_6579_4b54;

/// The directory's VRF private key, from its key file.
#[derive(Clone)]
struct VrfKey([u8; 32]);

#[async_trait::async_trait]
impl akd::ecvrf::VRFKeyStorage for VrfKey {
    async fn retrieve(&self) -> Result<Vec<u8>, akd::ecvrf::VrfError> {
        Ok(self.0.to_vec())
    }
}

type KeyDirectory = Directory<DirectoryConfig, DirectoryStore, VrfKey>;

/// This server's key directory.
pub struct Transparency {
    remote: Arc<Remote>,
    pool: deadpool_postgres::Pool,
    metrics: Arc<Metrics>,
    vrf: VrfKey,
    vrf_public_key: Vec<u8>,
    pub config: TransparencyConfig,
}

fn akd_error(context: &str, e: AkdError) -> ApiError {
    ApiError::internal(context, format!("{e:?}"))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Transparency {
    /// The directory with the VRF key of `vrf_key_file` (created if missing).
    pub async fn open(
        remote: Arc<Remote>,
        pool: deadpool_postgres::Pool,
        metrics: Arc<Metrics>,
        config: TransparencyConfig,
        vrf_key_file: &std::path::Path,
    ) -> anyhow::Result<Arc<Self>> {
        use akd::ecvrf::VRFKeyStorage as _;
        let vrf = VrfKey(crate::key_file::open_or_create(vrf_key_file, "key directory VRF key")?);
        let public = vrf
            .get_vrf_public_key()
            .await
            .map_err(|e| anyhow::anyhow!("the key directory VRF key is unusable: {e:?}"))?;
        let transparency = Arc::new(Self {
            remote,
            pool,
            metrics,
            vrf,
            vrf_public_key: public.as_bytes().to_vec(),
            config,
        });
        // Creates the empty directory (epoch 0) on a new database.
        transparency
            .directory()
            .await
            .map_err(|e| anyhow::anyhow!("opening the key directory: {}", e.message))?;
        Ok(transparency)
    }

    /// The directory over a new store and cache: processes share nothing but the
    /// database, so nothing read earlier is relied on.
    async fn directory(&self) -> Result<(KeyDirectory, DirectoryStore), ApiError> {
        let store = DirectoryStore::new(self.pool.clone());
        let storage = StorageManager::new(store.clone(), Some(Duration::from_secs(600)), None, None);
        let directory = Directory::new(storage, self.vrf.clone(), AzksParallelismConfig::default())
            .await
            .map_err(|e| akd_error("opening the key directory", e))?;
        Ok((directory, store))
    }

    /// Publishes the users with unpublished changes as the next epoch, unless another
    /// process is publishing; returns the new epoch, if one was published.
    pub async fn publish_pending(&self) -> Result<Option<u64>, ApiError> {
        let lock = self.pool.get().await?;
        let locked: bool = lock
            .query_one("SELECT pg_try_advisory_lock($1)", &[&PUBLISH_LOCK])
            .await?
            .get(0);
        if !locked {
            return Ok(None);
        }
        let result = self.publish_locked().await;
        if let Err(e) = lock.execute("SELECT pg_advisory_unlock($1)", &[&PUBLISH_LOCK]).await {
            tracing::warn!(error = %e, "releasing the key directory's publish lock");
        }
        result
    }

    async fn publish_locked(&self) -> Result<Option<u64>, ApiError> {
        let (directory, store) = self.directory().await?;
        // An epoch published by a process that stopped before signing it is signed now,
        // before a newer one makes its root unobtainable.
        let latest = latest_epoch(&directory).await?;
        self.signed_root(&latest).await?;

        let db = self.pool.get().await?;
        let pending = store::transparency::pending(&db, MAX_USERS_PER_EPOCH).await?;
        if pending.is_empty() {
            return Ok(None);
        }
        let localparts: Vec<String> = pending.iter().map(|(l, _)| l.clone()).collect();
        let mut devices: BTreeMap<String, Vec<DeviceKey>> =
            localparts.iter().map(|l| (l.clone(), Vec::new())).collect();
        for (localpart, device_id, key) in store::transparency::bound_keys_of(&db, &localparts).await? {
            let device_id = DeviceId::parse(&device_id).map_err(|e| ApiError::internal("stored device id", e))?;
            devices.entry(localpart).or_default().push(DeviceKey {
                device_id,
                signature_key: key.into(),
            });
        }
        let server = &self.remote.server_name;
        let values: Vec<(akd::AkdLabel, akd::AkdValue)> = devices
            .iter()
            .map(|(localpart, keys)| {
                let user = UserId::parse(&format!("{localpart}@{server}"))
                    .map_err(|e| ApiError::internal("stored localpart", e))?;
                Ok((label(&user), parley_transparency::encode_value(keys)))
            })
            .collect::<Result<_, ApiError>>()?;
        let labels: Vec<akd::AkdLabel> = values.iter().map(|(l, _)| l.clone()).collect();
        let published = store
            .get_user_state_versions(&labels, ValueStateRetrievalFlag::MaxEpoch)
            .await
            .map_err(|e| ApiError::internal("reading published values", e))?;
        // A user whose devices are as published (a device created and deleted between
        // epochs), or who has none and never had any, needs no new version.
        let updates: Vec<(akd::AkdLabel, akd::AkdValue)> = values
            .into_iter()
            .filter(|(label, value)| match published.get(label) {
                Some((_, current)) => current != value,
                None => parley_transparency::decode_value(&value.0).is_ok_and(|d| !d.is_empty()),
            })
            .collect();
        if updates.is_empty() {
            let (localparts, seqs): (Vec<String>, Vec<i64>) = pending.into_iter().unzip();
            store::transparency::delete_pending(&db, &localparts, &seqs).await?;
            return Ok(None);
        }
        let count = updates.len();
        store.consume_on_commit(pending);
        let started = std::time::Instant::now();
        let epoch = directory
            .publish(updates)
            .await
            .map_err(|e| akd_error("publishing an epoch of the key directory", e))?;
        let signed = self.signed_root(&epoch).await?;
        self.metrics.transparency_epoch.set(to_i64(epoch.epoch()));
        self.metrics.transparency_published_users.inc_by(count as u64);
        tracing::info!(
            epoch = signed.root.epoch,
            users = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "key directory epoch published"
        );
        Ok(Some(epoch.epoch()))
    }

    /// The signed root of `epoch` (this server's latest when signed): the stored one,
    /// else signed now. Every process stores the same one: the first stored wins.
    async fn signed_root(&self, epoch: &EpochHash) -> Result<SignedRoot, ApiError> {
        let db = self.pool.get().await?;
        let at = to_i64(epoch.epoch());
        let stored = match store::transparency::roots(&db, at, at).await?.pop() {
            Some((_, stored)) => stored,
            None => {
                let root = DirectoryRoot {
                    server: self.remote.server_name.clone(),
                    epoch: epoch.epoch(),
                    root_hash: epoch.hash().to_vec().into(),
                    vrf_public_key: self.vrf_public_key.clone().into(),
                    published_at_ms: now_ms(),
                };
                let signed = transparency_root::sign(&self.remote.keys.current(), root);
                let value = serde_json::to_value(&signed).map_err(|e| ApiError::internal("encoding a root", e))?;
                store::transparency::insert_root(&db, at, &value).await?
            }
        };
        self.signed_with_current_key(stored)
    }

    /// A stored root as this server's current key signs it. After a key rotation, the
    /// latest root stays signed by the old key until the next epoch; clients check roots
    /// with the key relayed with the list, the current one, so the same root is signed
    /// again. The root itself is the one stored: a second signature of one root is no
    /// split view.
    fn signed_with_current_key(&self, stored: serde_json::Value) -> Result<SignedRoot, ApiError> {
        let signed: SignedRoot = serde_json::from_value(stored).map_err(|e| ApiError::internal("a stored root", e))?;
        let keyring = self.remote.keys.current();
        if signed.server_signature.key_id == keyring.key_id().as_str() {
            Ok(signed)
        } else {
            Ok(transparency_root::sign(&keyring, signed.root))
        }
    }

    /// The lookup proof of `user`, a user of this server, at the latest epoch; `None`
    /// when the user was never published (no device of theirs ever had a key).
    pub async fn lookup(&self, user: &UserId) -> Result<Option<TransparencyLookup>, ApiError> {
        let (directory, store) = self.directory().await?;
        // The directory reads its state once (then from its cache): whether the user is
        // published is asked of that epoch, not of one published since.
        let latest = latest_epoch(&directory).await?;
        if published_state(&store, user, latest.epoch()).await?.is_none() {
            return Ok(None);
        }
        let (proof, epoch) = directory
            .lookup(label(user))
            .await
            .map_err(|e| akd_error("a lookup proof", e))?;
        Ok(Some(TransparencyLookup {
            root: self.signed_root(&epoch).await?,
            proof: encode_lookup_proof(&proof).into(),
            witnessed: None,
        }))
    }

    /// The key-history proof of `user`'s versions from `since_version` on (at most
    /// `MAX_HISTORY_VERSIONS`; at least the latest one).
    pub async fn history(&self, user: &UserId, since_version: u64) -> Result<TransparencyHistory, ApiError> {
        let (directory, store) = self.directory().await?;
        let latest_epoch = latest_epoch(&directory).await?;
        let root = self.signed_root(&latest_epoch).await?;
        let Some(latest) = published_state(&store, user, latest_epoch.epoch()).await? else {
            return Ok(TransparencyHistory {
                root,
                server_key: crate::remote::device_keys::current_verify_key(&self.remote),
                proof: None,
                versions: 0,
                update_roots: Vec::new(),
            });
        };
        let latest = latest.version;
        let versions = latest
            .saturating_sub(since_version.max(1))
            .saturating_add(1)
            .clamp(1, MAX_HISTORY_VERSIONS);
        let (proof, epoch) = directory
            .key_history(&label(user), HistoryParams::MostRecent(versions as usize))
            .await
            .map_err(|e| akd_error("a key-history proof", e))?;
        // The directory read its state once: the proof is against `root`'s epoch.
        debug_assert_eq!(epoch.epoch(), root.root.epoch);
        let epochs: Vec<i64> = proof.update_proofs.iter().map(|u| to_i64(u.epoch)).collect();
        let db = self.pool.get().await?;
        let update_roots = store::transparency::roots_of(&db, &epochs)
            .await?
            .into_iter()
            .map(|stored| self.signed_with_current_key(stored))
            .collect::<Result<_, ApiError>>()?;
        Ok(TransparencyHistory {
            root,
            server_key: crate::remote::device_keys::current_verify_key(&self.remote),
            proof: Some(encode_history_proof(&proof).into()),
            versions,
            update_roots,
        })
    }

    /// The signed roots of `from..=to` (`to` clamped to `from`..=the latest epoch, at most
    /// `MAX_AUDIT_EPOCHS` more than `from`) and the append-only proof between them;
    /// `not_found` for a `from` after the latest epoch.
    pub async fn audit_proof(&self, from: u64, to: u64) -> Result<TransparencyAudit, ApiError> {
        if from == 0 || to == 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidParam,
                "epochs start at 1: from_epoch and to_epoch must be at least 1",
            ));
        }
        let (directory, _) = self.directory().await?;
        let latest = latest_epoch(&directory).await?;
        self.signed_root(&latest).await?;
        if from > latest.epoch() {
            return Err(ApiError::not_found(&format!(
                "epoch {from} of this server's key directory (its latest is {})",
                latest.epoch()
            )));
        }
        // A range ending before it starts is the one epoch asked for.
        let to = to.max(from);
        let to = to.min(latest.epoch()).min(from + MAX_AUDIT_EPOCHS);
        let db = self.pool.get().await?;
        let roots = store::transparency::roots(&db, to_i64(from), to_i64(to))
            .await?
            .into_iter()
            .map(|(_, signed)| serde_json::from_value(signed).map_err(|e| ApiError::internal("a stored root", e)))
            .collect::<Result<Vec<SignedRoot>, ApiError>>()?;
        let proof = if to > from {
            let proof = directory
                .audit(from, to)
                .await
                .map_err(|e| akd_error("an append-only proof", e))?;
            Some(encode_audit_proof(&proof).into())
        } else {
            None
        };
        Ok(TransparencyAudit { roots, proof })
    }

    /// The latest published epoch and the users waiting for the next one.
    pub async fn status(&self) -> Result<(u64, u64), ApiError> {
        let db = self.pool.get().await?;
        let epoch = store::transparency::latest_root_epoch(&db).await?;
        let pending = store::transparency::pending_count(&db).await?;
        Ok((u64::try_from(epoch).unwrap_or(0), u64::try_from(pending).unwrap_or(0)))
    }
}

/// The latest epoch, as `directory` reads it (and keeps reading it: its cache).
async fn latest_epoch(directory: &KeyDirectory) -> Result<EpochHash, ApiError> {
    directory
        .get_epoch_hash()
        .await
        .map_err(|e| akd_error("reading the directory's epoch", e))
}

/// `user`'s latest published value at `epoch`, if any.
async fn published_state(
    store: &DirectoryStore,
    user: &UserId,
    epoch: u64,
) -> Result<Option<akd::storage::types::ValueState>, ApiError> {
    match store
        .get_user_state(&label(user), ValueStateRetrievalFlag::LeqEpoch(epoch))
        .await
    {
        Ok(state) => Ok(Some(state)),
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(e) => Err(ApiError::internal("reading the directory", e)),
    }
}

/// Publishes pending changes every `epoch_interval_ms`, for good.
pub async fn publish_forever(transparency: Arc<Transparency>) {
    let every = Duration::from_millis(transparency.config.epoch_interval_ms.max(10));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = transparency.publish_pending().await {
            tracing::warn!(error = %e.message, "publishing the key directory failed; trying again next interval");
        }
    }
}
