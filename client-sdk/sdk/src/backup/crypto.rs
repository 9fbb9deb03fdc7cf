//! The key backup's keys and chunk encryption (see the [module documentation](super)).

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use parley_specs::{Base64Bytes, UserId};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::BackupError;

/// Bytes of a generated recovery key: 240 bits, 48 base32 characters.
pub const RECOVERY_KEY_BYTES: usize = 30;
/// Argon2id cost for a passphrase: 64 MiB, 3 passes, 1 lane (RFC 9106's second
/// recommended setting). About a third of a second on a laptop core.
pub const PASSPHRASE_MEMORY_KIB: u32 = 64 * 1024;
pub const PASSPHRASE_PASSES: u32 = 3;
pub const PASSPHRASE_LANES: u32 = 1;
/// Shortest passphrase accepted for a backup.
pub const MIN_BACKUP_PASSPHRASE_CHARS: usize = 12;
/// Refuse to spend more than this on one key derivation, whatever a backup claims.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Version of the chunk encoding: `0x01 ‖ 24-byte nonce ‖ XChaCha20-Poly1305 ciphertext`.
const CHUNK_FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const DOMAIN: &[u8] = b"parley-key-backup-v1";
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A generated recovery key: 240 random bits, written as 48 base32 characters in twelve
/// groups of four (`ABCD-EFGH-…`). Shown once; whoever holds it can read the backup.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryKey([u8; RECOVERY_KEY_BYTES]);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(<redacted>)")
    }
}

impl Drop for RecoveryKey {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl RecoveryKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RECOVERY_KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads a key as [`RecoveryKey::display`] writes it; spaces, dashes and case do not
    /// matter.
    pub fn parse(text: &str) -> Result<Self, BackupError> {
        let bad = || BackupError::MalformedRecoveryKey;
        let mut bits: u64 = 0;
        let mut count = 0;
        let mut out = Vec::with_capacity(RECOVERY_KEY_BYTES);
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let c = c.to_ascii_uppercase();
            let value = BASE32.iter().position(|b| char::from(*b) == c).ok_or_else(bad)?;
            bits = (bits << 5) | value as u64;
            count += 5;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        let bytes: [u8; RECOVERY_KEY_BYTES] = out.try_into().map_err(|_| bad())?;
        if count != 0 {
            return Err(bad());
        }
        Ok(Self(bytes))
    }

    /// `ABCD-EFGH-…`: 48 characters in groups of four.
    pub fn display(&self) -> String {
        let mut chars = String::with_capacity(60);
        let mut bits: u64 = 0;
        let mut count = 0;
        for byte in self.0 {
            bits = (bits << 8) | u64::from(byte);
            count += 8;
            while count >= 5 {
                count -= 5;
                chars.push(char::from(BASE32[((bits >> count) & 31) as usize]));
            }
            bits &= (1 << count) - 1;
        }
        let groups: Vec<String> = chars
            .as_bytes()
            .chunks(4)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect();
        groups.join("-")
    }
}

/// What a backup's key is derived from.
#[derive(Debug, Clone)]
pub enum BackupSecret {
    /// A generated [`RecoveryKey`] (the default).
    RecoveryKey(RecoveryKey),
    /// A passphrase the user chose (at least [`MIN_BACKUP_PASSPHRASE_CHARS`] characters),
    /// stretched with Argon2id.
    Passphrase(String),
}

impl BackupSecret {
    /// A recovery key if `text` reads as one, else a passphrase.
    pub fn from_text(text: &str) -> Self {
        match RecoveryKey::parse(text) {
            Ok(key) => Self::RecoveryKey(key),
            Err(_) => Self::Passphrase(text.to_owned()),
        }
    }
}

/// How the backup key is derived, stored in the clear as the `keys` chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kdf", rename_all = "snake_case")]
pub enum Kdf {
    /// HKDF-SHA256 over a generated 240-bit recovery key.
    RecoveryKey,
    /// Argon2id over a passphrase, then HKDF-SHA256.
    Argon2id { memory_kib: u32, passes: u32, lanes: u32 },
}

/// The `keys` chunk: the account it belongs to, the KDF and its salt, and a check value
/// that tells a wrong key from damaged data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyParams {
    pub format: u32,
    pub user_id: UserId,
    #[serde(flatten)]
    pub kdf: Kdf,
    pub salt: Base64Bytes,
    /// HKDF(root, "key-check"), 16 bytes.
    pub key_check: Base64Bytes,
}

/// The backup's root key and the keys derived from it.
#[derive(Clone)]
pub(crate) struct BackupKey {
    root: [u8; 32],
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(<redacted>)")
    }
}

impl Drop for BackupKey {
    fn drop(&mut self) {
        self.root.iter_mut().for_each(|b| *b = 0);
    }
}

impl BackupKey {
    /// A new backup for `user` under `secret`: its key and the `keys` chunk to store.
    pub(crate) fn create(user: &UserId, secret: &BackupSecret) -> Result<(Self, KeyParams), BackupError> {
        let mut salt = vec![0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let kdf = match secret {
            BackupSecret::RecoveryKey(_) => Kdf::RecoveryKey,
            BackupSecret::Passphrase(p) if p.chars().count() < MIN_BACKUP_PASSPHRASE_CHARS => {
                return Err(BackupError::WeakPassphrase(MIN_BACKUP_PASSPHRASE_CHARS));
            }
            BackupSecret::Passphrase(_) => Kdf::Argon2id {
                memory_kib: PASSPHRASE_MEMORY_KIB,
                passes: PASSPHRASE_PASSES,
                lanes: PASSPHRASE_LANES,
            },
        };
        let key = Self::derive(user, secret, &kdf, &salt)?;
        let params = KeyParams {
            format: 1,
            user_id: user.clone(),
            kdf,
            salt: Base64Bytes(salt),
            key_check: Base64Bytes(key.subkey(b"key-check", 16)),
        };
        Ok((key, params))
    }

    /// The key of the backup described by `params`, for `user` with `secret`: refuses a
    /// backup of another account and a wrong key (nothing is decrypted before this).
    pub(crate) fn open(user: &UserId, secret: &BackupSecret, params: &KeyParams) -> Result<Self, BackupError> {
        if params.format != 1 {
            return Err(BackupError::Format(format!(
                "key backup format {} is not known to this version",
                params.format
            )));
        }
        if &params.user_id != user {
            return Err(BackupError::OtherAccount {
                backup_user: params.user_id.clone(),
                user: user.clone(),
            });
        }
        let key = Self::derive(user, secret, &params.kdf, params.salt.as_slice())?;
        let check = key.subkey(b"key-check", 16);
        if !bool::from(check.as_slice().ct_eq(params.key_check.as_slice())) {
            return Err(match secret {
                BackupSecret::RecoveryKey(_) => BackupError::WrongKey("recovery key"),
                BackupSecret::Passphrase(_) => BackupError::WrongKey("passphrase"),
            });
        }
        Ok(key)
    }

    fn derive(user: &UserId, secret: &BackupSecret, kdf: &Kdf, salt: &[u8]) -> Result<Self, BackupError> {
        let mut ikm = [0u8; 32];
        match (secret, kdf) {
            (BackupSecret::RecoveryKey(key), Kdf::RecoveryKey) => {
                // 240 random bits: no guessing to slow down, so no stretching.
                ikm = Sha256::digest(key.0).into();
            }
            (
                BackupSecret::Passphrase(passphrase),
                Kdf::Argon2id {
                    memory_kib,
                    passes,
                    lanes,
                },
            ) => {
                if *memory_kib > MAX_MEMORY_KIB || *passes > 64 || *lanes > 16 {
                    return Err(BackupError::Format(
                        "the backup asks for too costly a key derivation".into(),
                    ));
                }
                let params = Params::new(*memory_kib, *passes, *lanes, None)
                    .map_err(|e| BackupError::Format(format!("bad Argon2id parameters: {e}")))?;
                Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                    .hash_password_into(passphrase.as_bytes(), salt, &mut ikm)
                    .map_err(|e| BackupError::Format(format!("Argon2id: {e}")))?;
            }
            (BackupSecret::RecoveryKey(_), _) => {
                return Err(BackupError::WrongKey("recovery key (this backup uses a passphrase)"));
            }
            (BackupSecret::Passphrase(_), _) => {
                return Err(BackupError::WrongKey("passphrase (this backup uses a recovery key)"));
            }
        }
        let mut info = DOMAIN.to_vec();
        info.extend_from_slice(b" root ");
        info.extend_from_slice(user.as_str().as_bytes());
        let hk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut root = [0u8; 32];
        hk.expand(&info, &mut root)
            .map_err(|_| BackupError::Format("HKDF".into()))?;
        ikm.iter_mut().for_each(|b| *b = 0);
        Ok(Self { root })
    }

    /// The key as stored in the device's sealed store, and back.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.root.to_vec()
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            root: bytes.try_into().ok()?,
        })
    }

    fn subkey(&self, label: &[u8], len: usize) -> Vec<u8> {
        let hk = Hkdf::<Sha256>::from_prk(&self.root).unwrap_or_else(|_| Hkdf::<Sha256>::new(None, &self.root));
        let mut out = vec![0u8; len];
        let mut info = DOMAIN.to_vec();
        info.push(b' ');
        info.extend_from_slice(label);
        // 16 or 32 bytes is far below HKDF's limit.
        let _ = hk.expand(&info, &mut out);
        out
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let key = self.subkey(b"chunk-encryption", 32);
        XChaCha20Poly1305::new(key.as_slice().into())
    }

    /// The id of the history chunk of `group` covering range `range`: the server sees
    /// neither the group id nor anything that links it to one.
    pub(crate) fn history_chunk_id(&self, group: &str, range: i64) -> String {
        let key = self.subkey(b"chunk-ids", 32);
        let mut h = Sha256::new();
        h.update(&key);
        h.update(group.as_bytes());
        let digest = h.finalize();
        format!("h-{}-{range}", hex::encode(&digest[..8]))
    }

    /// Encrypts a chunk; its id, version and account are bound as associated data, so a
    /// chunk moved to another id, version or account does not open.
    pub(crate) fn seal(&self, user: &UserId, chunk_id: &str, version: i64, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(user, chunk_id, version);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(CHUNK_FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts a chunk sealed by [`BackupKey::seal`] for this id, version and account.
    pub(crate) fn open_chunk(&self, user: &UserId, chunk_id: &str, version: i64, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != CHUNK_FORMAT {
            return None;
        }
        let aad = aad(user, chunk_id, version);
        self.cipher()
            .decrypt(
                XNonce::from_slice(&sealed[1..=NONCE_LEN]),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .ok()
    }
}

fn aad(user: &UserId, chunk_id: &str, version: i64) -> Vec<u8> {
    let mut aad = DOMAIN.to_vec();
    for field in [user.as_str().as_bytes(), chunk_id.as_bytes()] {
        aad.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(field);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).expect("user")
    }

    #[test]
    fn recovery_keys_round_trip_in_groups_of_four() {
        let key = RecoveryKey::generate();
        let shown = key.display();
        assert_eq!(shown.len(), 48 + 11, "{shown}");
        assert_eq!(shown.split('-').count(), 12);
        assert_eq!(RecoveryKey::parse(&shown).expect("parse"), key);
        assert_eq!(
            RecoveryKey::parse(&shown.to_lowercase().replace('-', " ")).expect("parse"),
            key
        );
        assert!(RecoveryKey::parse("ABCD").is_err());
        assert!(RecoveryKey::parse(&format!("{shown}A")).is_err());
        assert!(RecoveryKey::parse(&shown.replace('A', "1")).is_err() || !shown.contains('A'));
    }

    #[test]
    fn keys_chunks_bind_account_key_id_and_version() {
        let ann = user("ann@a.example");
        let secret = BackupSecret::RecoveryKey(RecoveryKey::generate());
        let (key, params) = BackupKey::create(&ann, &secret).expect("create");
        let again = BackupKey::open(&ann, &secret, &params).expect("open");
        let sealed = key.seal(&ann, "state", 3, b"hello");
        assert_eq!(
            again.open_chunk(&ann, "state", 3, &sealed).as_deref(),
            Some(&b"hello"[..])
        );
        assert!(again.open_chunk(&ann, "state", 4, &sealed).is_none(), "another version");
        assert!(again.open_chunk(&ann, "other", 3, &sealed).is_none(), "another id");
        assert!(again.open_chunk(&user("bob@a.example"), "state", 3, &sealed).is_none());
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(again.open_chunk(&ann, "state", 3, &altered).is_none());

        let wrong = BackupSecret::RecoveryKey(RecoveryKey::generate());
        assert!(matches!(
            BackupKey::open(&ann, &wrong, &params),
            Err(BackupError::WrongKey(_))
        ));
        assert!(matches!(
            BackupKey::open(&user("bob@a.example"), &secret, &params),
            Err(BackupError::OtherAccount { .. })
        ));
    }

    #[test]
    fn passphrases_are_stretched_and_checked() {
        let ann = user("ann@a.example");
        assert!(matches!(
            BackupKey::create(&ann, &BackupSecret::Passphrase("short".into())),
            Err(BackupError::WeakPassphrase(_))
        ));
        let secret = BackupSecret::Passphrase("correct horse battery staple".into());
        let (_, params) = BackupKey::create(&ann, &secret).expect("create");
        assert!(matches!(params.kdf, Kdf::Argon2id { memory_kib: 65536, .. }));
        BackupKey::open(&ann, &secret, &params).expect("open");
        let wrong = BackupSecret::Passphrase("correct horse battery stapler".into());
        assert!(matches!(
            BackupKey::open(&ann, &wrong, &params),
            Err(BackupError::WrongKey(_))
        ));
    }
}
