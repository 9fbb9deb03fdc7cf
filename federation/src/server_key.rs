//! A homeserver's signing keys: the current ed25519 key, and the public halves of the keys
//! it retired with the time each stopped signing, so peers can still verify what was
//! signed before a rotation. All of it lives in one JSON key file that only its owner may
//! read; a file others can read is refused, as ssh refuses a readable private key.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::B64;

const KEY_FILE_FORMAT: u32 = 1;
const ALGORITHM: &str = "ed25519";

/// How long a retired key keeps verifying after a rotation: the processes of a running
/// server reload the key file within a second, and requests they signed with the old key
/// just before may still be in flight or queued for a retry.
pub const ROTATION_OVERLAP_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("`{0}` is not a key id (expected ed25519:<1 to 32 letters, digits, _ or ->)")]
    BadKeyId(String),
    #[error("not an ed25519 public key: {0}")]
    BadPublicKey(String),
}

/// Names one signing key of a server: `ed25519:` and a short tag derived from the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let tag = s
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or_else(|| KeyError::BadKeyId(s.to_owned()))?;
        let ok =
            (1..=32).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyError::BadKeyId(s.to_owned()))
        }
    }

    /// The id of a public key: a tag from its SHA-256, so two keys rarely share an id and
    /// the id says nothing a peer could not compute itself.
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..6]);
        Self(format!("{ALGORITHM}:{tag}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        Self::parse(&s)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes a base64 ed25519 public key as published in key documents.
pub fn decode_public_key(b64: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = B64
        .decode(b64.trim_end_matches('='))
        .map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::BadPublicKey(format!("{} bytes, expected 32", b.len())))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::BadPublicKey(e.to_string()))
}

pub fn encode_public_key(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// A key that no longer signs, kept so what it signed stays verifiable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    pub key_id: KeyId,
    pub public_key: VerifyingKey,
    /// When it stopped signing (Unix milliseconds).
    pub expired_at_ms: i64,
    /// Compromised: nothing it signed verifies any more, whatever time the signature
    /// claims (a thief can claim any).
    pub revoked: bool,
}

/// The server's current signing key and its retired keys.
pub struct ServerKeyring {
    current: SigningKey,
    current_id: KeyId,
    retired: Vec<RetiredKey>,
}

impl fmt::Debug for ServerKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerKeyring")
            .field("key_id", &self.current_id)
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

/// The key file's JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: u32,
    key_id: KeyId,
    secret_key: String,
    #[serde(default)]
    retired: Vec<RetiredEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredEntry {
    key_id: KeyId,
    public_key: String,
    expired_at_ms: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    revoked: bool,
}

impl ServerKeyring {
    /// A new keyring with a fresh random key and nothing retired.
    pub fn generate() -> Self {
        let current = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        Self {
            current_id: KeyId::of(&current.verifying_key()),
            current,
            retired: Vec::new(),
        }
    }

    pub fn key_id(&self) -> &KeyId {
        &self.current_id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.current.verifying_key()
    }

    pub fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.current.sign(message)
    }

    /// Signs with a new key from now on; the current one is retired and verifies what it
    /// signed until `old_key_expires_ms`. Give a running server's processes, which pick up
    /// the new key file within seconds, that long: see [`ROTATION_OVERLAP_MS`]. A
    /// `revoked` key (compromised) verifies nothing any more.
    pub fn rotate(&mut self, old_key_expires_ms: i64, revoked: bool) {
        let next = Self::generate();
        let old_id = std::mem::replace(&mut self.current_id, next.current_id);
        let old = std::mem::replace(&mut self.current, next.current);
        self.retired.push(RetiredKey {
            key_id: old_id,
            public_key: old.verifying_key(),
            expired_at_ms: old_key_expires_ms,
            revoked,
        });
    }

    /// Reads the key file at `path`, or creates one with a new key when there is none.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keyring = Self::generate();
                // Processes of one server starting together on a shared key file must
                // all end up with the same key: the first one written wins.
                if write_private(path, &keyring.file_bytes(path)?, true)? {
                    Ok((keyring, true))
                } else {
                    Ok((Self::load(path)?, false))
                }
            }
            Err(e) => Err(file_error(path, format!("cannot read: {e}"))),
        }
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let metadata = fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(file_error(
                path,
                format!("the server key file must be readable by its owner only (mode {mode:o}); run chmod 600 on it"),
            ));
        }
        let json = fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
        Self::parse_key_file(&json).map_err(|reason| file_error(path, reason))
    }

    /// Parses the contents of a key file (see [`Self::load`], which also checks the
    /// file's mode); the error says what is wrong with them.
    pub fn parse_key_file(json: &[u8]) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_slice(json).map_err(|e| format!("not a server key file: {e}"))?;
        if file.format != KEY_FILE_FORMAT {
            return Err(format!(
                "key file format {} is unknown (expected {KEY_FILE_FORMAT})",
                file.format
            ));
        }
        let secret: [u8; 32] = B64
            .decode(file.secret_key.trim_end_matches('='))
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("secret_key is not 32 bytes of base64")?;
        let current = SigningKey::from_bytes(&secret);
        if KeyId::of(&current.verifying_key()) != file.key_id {
            return Err("key_id does not belong to secret_key".into());
        }
        let retired = file
            .retired
            .into_iter()
            .map(|r| {
                Ok(RetiredKey {
                    public_key: decode_public_key(&r.public_key)
                        .map_err(|e| format!("retired key {}: {e}", r.key_id))?,
                    key_id: r.key_id,
                    expired_at_ms: r.expired_at_ms,
                    revoked: r.revoked,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            current,
            current_id: file.key_id,
            retired,
        })
    }

    /// Writes the keyring to `path` atomically (a temporary file beside it, synced, then
    /// renamed), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_private(path, &self.file_bytes(path)?, false).map(drop)
    }

    fn file_bytes(&self, path: &Path) -> Result<Vec<u8>, KeyError> {
        let file = KeyFile {
            format: KEY_FILE_FORMAT,
            key_id: self.current_id.clone(),
            secret_key: B64.encode(self.current.to_bytes()),
            retired: self
                .retired
                .iter()
                .map(|r| RetiredEntry {
                    key_id: r.key_id.clone(),
                    public_key: encode_public_key(&r.public_key),
                    expired_at_ms: r.expired_at_ms,
                    revoked: r.revoked,
                })
                .collect(),
        };
        serde_json::to_vec_pretty(&file).map_err(|e| file_error(path, e.to_string()))
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::File {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Writes `bytes` to `path` readable by the owner only, atomically, creating its
/// directory; with `keep_existing`, an existing file is kept and `false` returned.
fn write_private(path: &Path, bytes: &[u8], keep_existing: bool) -> Result<bool, KeyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| file_error(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let written = if keep_existing {
        parley_private_file::create(path, bytes)
    } else {
        parley_private_file::write(path, bytes).map(|()| true)
    };
    written.map_err(|e| file_error(path, format!("cannot write: {e}")))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier as _;

    use super::*;

    #[test]
    fn processes_creating_the_key_file_together_all_use_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let created: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ServerKeyring::load_or_create(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = ServerKeyring::load(&path).unwrap();
        assert!(created.iter().all(|(k, _)| k.key_id() == on_disk.key_id()));
        assert_eq!(created.iter().filter(|(_, new)| *new).count(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn key_ids_are_derived_from_the_key_and_validated() {
        let keyring = ServerKeyring::generate();
        assert_eq!(keyring.key_id(), &KeyId::of(&keyring.public_key()));
        assert!(keyring.key_id().as_str().starts_with("ed25519:"));
        for bad in ["", "ed25519:", "rsa:abc", "ed25519:a b", "ed25519:abc/def"] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/server.key");
        let (created, fresh) = ServerKeyring::load_or_create(&path).unwrap();
        assert!(fresh);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (loaded, fresh) = ServerKeyring::load_or_create(&path).unwrap();
        assert!(!fresh);
        assert_eq!(loaded.key_id(), created.key_id());
        let signature = loaded.sign(b"hello");
        created.public_key().verify(b"hello", &signature).unwrap();
    }

    #[test]
    fn rotation_keeps_the_old_public_key_with_its_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let mut keyring = ServerKeyring::generate();
        let old_id = keyring.key_id().clone();
        let old_public = keyring.public_key();
        keyring.rotate(1_000, false);
        keyring.save(&path).unwrap();
        let loaded = ServerKeyring::load(&path).unwrap();
        assert_ne!(loaded.key_id(), &old_id);
        assert_eq!(
            loaded.retired(),
            &[RetiredKey {
                key_id: old_id,
                public_key: old_public,
                expired_at_ms: 1_000,
                revoked: false,
            }]
        );
    }

    #[test]
    fn readable_or_damaged_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        ServerKeyring::generate().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ServerKeyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let other = ServerKeyring::generate();
        let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        json["key_id"] = other.key_id().as_str().into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let err = ServerKeyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("does not belong"), "{err}");

        fs::write(&path, b"not json").unwrap();
        assert!(ServerKeyring::load(&path).is_err());
    }
}
