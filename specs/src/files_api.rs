//! Encrypted files: the client API's resumable uploads and downloads, and what they carry.
//! A device encrypts a file before it leaves (see `specs/protocol.md`, "Files"); servers
//! store and relay only ciphertext, named by a random blob id on the server it was
//! uploaded to (its origin).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{GroupId, ServerName};

/// Characters of a blob id: 32 random bytes in unpadded base64url.
pub const BLOB_ID_LEN: usize = 43;

/// Whether `id` has the form of a blob id (43 base64url characters).
pub fn is_blob_id(id: &str) -> bool {
    id.len() == BLOB_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `POST /client/v1/uploads`: starts an upload of `size` bytes of ciphertext for a file
/// posted in `group_id` (whose member servers may then fetch it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    pub group_id: GroupId,
    /// The ciphertext's exact length in bytes.
    #[serde(deserialize_with = "crate::ints::u64")]
    pub size: u64,
    /// The message that carries the file disappears then: the blob is deleted at the
    /// same time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "time::serde::rfc3339::option::serialize",
        deserialize_with = "crate::optional::rfc3339"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

/// Where an upload stands (the answer of every upload endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub blob_id: String,
    /// The origin server: downloads name it (`GET /client/v1/blobs/{server}/{blob_id}`).
    pub server: ServerName,
    pub size: u64,
    /// Bytes received so far: the next `PUT` starts here.
    pub offset: u64,
    /// Whether every byte was received and the upload completed.
    pub complete: bool,
}

/// Query of `PUT /client/v1/uploads/{blob_id}`: where the body's bytes go.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadChunkQuery {
    pub offset: u64,
}
