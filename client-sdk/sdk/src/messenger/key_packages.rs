//! The device's supply of KeyPackages on its homeserver: published at first use, topped
//! up when it runs low, with a last-resort package for when it runs out.

use parley_specs::keys_api::{KeyPackageCount, UploadKeyPackagesRequest};

use super::store::StoreLock;
use super::{Messenger, Result};

/// Below this many unclaimed KeyPackages, the device uploads more.
pub const KEY_PACKAGES_LOW_WATER: i64 = 5;
/// How many unclaimed KeyPackages a top-up restores.
pub const KEY_PACKAGES_TARGET: i64 = 20;

impl Messenger {
    /// Makes sure the homeserver holds enough KeyPackages of this device (at least
    /// [`KEY_PACKAGES_LOW_WATER`], topped up to [`KEY_PACKAGES_TARGET`]) and a last-resort
    /// one; returns the count afterwards. Operations that talk to the homeserver do this
    /// once per process, and again after joining a group.
    pub async fn top_up_key_packages(&mut self) -> Result<KeyPackageCount> {
        let lock = self.begin().await?;
        let result = self.top_up_locked(&lock).await;
        self.end(lock, result)
    }

    pub(crate) async fn top_up_locked(&mut self, lock: &StoreLock) -> Result<KeyPackageCount> {
        let count = self.client.key_package_count().await?;
        let missing = if count.available < KEY_PACKAGES_LOW_WATER {
            KEY_PACKAGES_TARGET - count.available.max(0)
        } else {
            0
        };
        if missing == 0 && count.last_resort {
            return Ok(count);
        }
        let mut packages = Vec::new();
        for _ in 0..missing {
            packages.push(self.identity.key_package(&self.provider, false)?.into());
        }
        if !count.last_resort {
            packages.push(self.identity.key_package(&self.provider, true)?.into());
        }
        // Their private keys are in the store before anyone can claim them.
        self.save(lock)?;
        let request = UploadKeyPackagesRequest { key_packages: packages };
        Ok(self.client.upload_key_packages(&request).await?)
    }

    /// What every operation that talks to the homeserver does first: settle commits whose
    /// answer was lost, and (once per process) check the KeyPackage supply and join the
    /// conversations of this user that this device is not in yet.
    pub(crate) async fn prepare_online(&mut self, lock: &StoreLock) -> Result<()> {
        if !self.state.pending_commits.is_empty() {
            self.resolve_pending_commits(lock).await?;
        }
        if !self.online_checked {
            self.top_up_locked(lock).await?;
            self.join_own_locked(lock).await?;
            self.check_missed(lock).await?;
            self.online_checked = true;
        }
        Ok(())
    }
}
