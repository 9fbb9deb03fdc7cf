//! The key backup store of the client API (`/client/v1/key-backup/…`): a per-account
//! store of opaque, versioned chunks that the account's devices fill with their
//! end-to-end encrypted backup (history, conversation list, contacts). The server never
//! sees what is inside a chunk; it keeps bytes, a version per chunk (optimistic
//! concurrency) and a per-account quota. See `specs/protocol.md`, "Key backup".

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A chunk id: 1–64 characters of `a-z`, `0-9`, `.`, `_`, `-`.
pub const MAX_CHUNK_ID_CHARS: usize = 64;
/// The response header of a chunk download that carries its version.
pub const VERSION_HEADER: &str = "parley-backup-version";

/// Whether `id` is a valid chunk id.
pub fn valid_chunk_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CHUNK_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
}

/// `PUT /client/v1/key-backup/chunks/{chunk_id}?expected_version=N`: the body is the
/// chunk's bytes (`application/octet-stream`). `expected_version` is the version the
/// client last saw (0: the chunk must not exist yet); the stored chunk gets
/// `expected_version + 1`. Another version stored answers `409 backup_version_conflict`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutChunkQuery {
    pub expected_version: i64,
}

/// One stored chunk, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    pub chunk_id: String,
    /// 1 for the first write, one more for each later write.
    pub version: i64,
    /// Bytes stored.
    pub size: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The answer to a chunk upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PutChunkResponse {
    pub chunk: ChunkInfo,
    /// Bytes the account's chunks take now, and the most it may store.
    pub used_bytes: i64,
    pub quota_bytes: i64,
}

/// `GET /client/v1/key-backup/chunks`: every chunk of the account (ids, versions, sizes)
/// and the limits that apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkList {
    pub chunks: Vec<ChunkInfo>,
    pub used_bytes: i64,
    pub quota_bytes: i64,
    /// The largest chunk accepted.
    pub max_chunk_bytes: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids() {
        for good in ["manifest", "keys", "h-0123abcd-17", "a.b_c"] {
            assert!(valid_chunk_id(good), "{good}");
        }
        let long = "a".repeat(MAX_CHUNK_ID_CHARS + 1);
        for bad in ["", "A", "a/b", "a b", "ü", long.as_str()] {
            assert!(!valid_chunk_id(bad), "{bad}");
        }
    }
}
