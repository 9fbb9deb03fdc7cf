//! The hub's public view of one MLS group (openmls `PublicGroup`), kept in PostgreSQL.
//!
//! openmls persists a `PublicGroup` through a key-value `PublicStorageProvider`. We give it
//! an in-memory map, loaded from the group's row inside the transaction that holds the
//! group's lock and written back in that same transaction, so the group's state and the
//! order of its messages can never disagree.

use std::collections::HashMap;

use openmls::prelude::{GroupId as MlsGroupId, PublicGroup};
use openmls_memory_storage::MemoryStorage;

use crate::error::ApiError;

pub struct PublicState {
    pub storage: MemoryStorage,
    pub group: PublicGroup,
}

impl PublicState {
    /// Loads the group `id` from its serialized storage map.
    pub fn load(bytes: &[u8], id: &MlsGroupId) -> Result<Self, ApiError> {
        let storage = MemoryStorage::default();
        {
            let mut values = storage
                .values
                .write()
                .map_err(|_| ApiError::internal("group state", "lock poisoned"))?;
            *values = decode_map(bytes).ok_or_else(|| ApiError::internal("group state", "stored state is damaged"))?;
        }
        let group = PublicGroup::load(&storage, id)
            .map_err(|e| ApiError::internal("loading group state", e))?
            .ok_or_else(|| ApiError::internal("loading group state", "no group in the stored state"))?;
        Ok(Self { storage, group })
    }

    pub fn serialize(&self) -> Result<Vec<u8>, ApiError> {
        serialize_storage(&self.storage)
    }
}

pub fn serialize_storage(storage: &MemoryStorage) -> Result<Vec<u8>, ApiError> {
    let values = storage
        .values
        .read()
        .map_err(|_| ApiError::internal("group state", "lock poisoned"))?;
    Ok(encode_map(&values))
}

/// Entries sorted by key, each as `u32 key length, key, u32 value length, value` (big endian).
fn encode_map(values: &HashMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut entries: Vec<_> = values.iter().collect();
    entries.sort();
    let mut out = Vec::new();
    for (key, value) in entries {
        for part in [key, value] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

fn decode_map(mut bytes: &[u8]) -> Option<HashMap<Vec<u8>, Vec<u8>>> {
    let take = |bytes: &mut &[u8]| -> Option<Vec<u8>> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let part = rest.get(..len)?.to_vec();
        *bytes = &rest[len..];
        Some(part)
    };
    let mut map = HashMap::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?;
        let value = take(&mut bytes)?;
        map.insert(key, value);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_round_trip_and_damage() {
        let map = HashMap::from([(b"k1".to_vec(), b"v1".to_vec()), (Vec::new(), vec![0; 300])]);
        let bytes = encode_map(&map);
        assert_eq!(decode_map(&bytes), Some(map));
        assert_eq!(decode_map(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_map(&[0, 0, 0]), None);
    }
}
