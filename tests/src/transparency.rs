//! A key directory (key transparency) in memory, as a homeserver keeps one, for tests and
//! seeds that need real lookup proofs against roots signed by a key of their choosing.

use akd::AzksParallelismConfig;
use akd::ecvrf::VRFKeyStorage;
use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use parley_federation::{ServerKeyring, transparency_root};
use parley_specs::keys_api::UserDeviceKeys;
use parley_specs::transparency_api::{DirectoryRoot, TransparencyLookup};
use parley_transparency::DirectoryConfig;
use time::OffsetDateTime;

/// A key directory as a server keeps it, in memory (real akd, real proofs).
pub struct MemoryDirectory {
    directory: akd::Directory<DirectoryConfig, AsyncInMemoryDatabase, MemoryVrf>,
    vrf_public_key: Vec<u8>,
}

#[derive(Clone)]
struct MemoryVrf([u8; 32]);

#[async_trait::async_trait]
impl VRFKeyStorage for MemoryVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, akd::ecvrf::VrfError> {
        Ok(self.0.to_vec())
    }
}

impl MemoryDirectory {
    pub async fn new() -> Self {
        let vrf = MemoryVrf(rand::random());
        let vrf_public_key = vrf.get_vrf_public_key().await.unwrap().as_bytes().to_vec();
        let storage = StorageManager::new_no_cache(AsyncInMemoryDatabase::new());
        let directory = akd::Directory::new(storage, vrf, AzksParallelismConfig::default())
            .await
            .unwrap();
        Self {
            directory,
            vrf_public_key,
        }
    }

    /// Publishes `list` as the next epoch; the lookup proof of its user with the root
    /// signed by `server_key`.
    pub async fn publish(&self, list: &UserDeviceKeys, server_key: &ServerKeyring) -> TransparencyLookup {
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.publish_at(list, server_key, now_ms).await
    }

    /// `publish` with the root published (and signed) at `published_at_ms`.
    pub async fn publish_at(
        &self,
        list: &UserDeviceKeys,
        server_key: &ServerKeyring,
        published_at_ms: i64,
    ) -> TransparencyLookup {
        let label = parley_transparency::label(&list.user_id);
        self.directory
            .publish(vec![(label.clone(), parley_transparency::encode_value(&list.devices))])
            .await
            .unwrap();
        let (proof, epoch) = self.directory.lookup(label).await.unwrap();
        let root = DirectoryRoot {
            server: list.user_id.server_name(),
            epoch: epoch.epoch(),
            root_hash: epoch.hash().to_vec().into(),
            vrf_public_key: self.vrf_public_key.clone().into(),
            published_at_ms,
        };
        TransparencyLookup {
            root: transparency_root::sign(server_key, root),
            proof: parley_transparency::encode_lookup_proof(&proof).into(),
            witnessed: None,
        }
    }
}
