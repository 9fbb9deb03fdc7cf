//! The openmls provider of one device: RustCrypto for cryptography, and openmls'
//! in-memory key-value storage, whose contents the messenger seals into its store file.

use std::collections::HashMap;
use std::sync::PoisonError;

use openmls::prelude::OpenMlsProvider;
use openmls_rust_crypto::{MemoryStorage, RustCrypto};

/// Cryptography plus the device's MLS state (private keys, group secrets, trees).
#[derive(Default)]
pub(crate) struct DeviceProvider {
    crypto: RustCrypto,
    storage: MemoryStorage,
}

impl std::fmt::Debug for DeviceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceProvider").finish_non_exhaustive()
    }
}

impl OpenMlsProvider for DeviceProvider {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = MemoryStorage;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        &self.crypto
    }
}

impl DeviceProvider {
    /// Every stored key and value, sorted by key (so equal states serialize equally).
    pub(crate) fn export(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let values = self.storage.values.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<_> = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort();
        all
    }

    /// Replaces the whole storage with `entries`.
    pub(crate) fn import(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) {
        let map: HashMap<_, _> = entries.into_iter().collect();
        *self.storage.values.write().unwrap_or_else(PoisonError::into_inner) = map;
    }
}
