//! TOTP secrets at rest: sealed with XChaCha20-Poly1305 under a 256-bit key kept in a
//! file outside the database (`[second_factor] key_file`, by default beside the
//! federation signing key), created readable by its owner only on first start. The
//! account's localpart is the associated data, so a sealed secret copied onto another
//! account's row does not open. A database dump alone holds only ciphertexts; a dump plus
//! the key file gives the secrets (`specs/threat-model.md`).

use std::path::Path;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::key_file::{self, KeyFileError};
const NONCE_BYTES: usize = 24;
/// The first byte of every sealed secret: the format, should it ever change.
const FORMAT_V1: u8 = 1;

/// The key that seals TOTP secrets.
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
}

/// A sealed secret that does not open: the key file was replaced or the row altered.
#[derive(Debug, thiserror::Error)]
#[error("a sealed second-factor secret does not open with this server's key file")]
pub struct Unsealable;

impl SealingKey {
    /// Reads the key file, creating it (mode 0600) with a new random key if missing.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let key = key_file::open_or_create(path, "second-factor key")?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new((&key).into()),
        })
    }

    /// `FORMAT_V1 || nonce || ciphertext`, bound to `account`.
    pub fn seal(&self, account: &str, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret,
            aad: account.as_bytes(),
        };
        // Encryption fails only for plaintexts beyond 256 GiB.
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, account: &str, sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let rest = sealed.strip_prefix(&[FORMAT_V1]).ok_or(Unsealable)?;
        if rest.len() < NONCE_BYTES {
            return Err(Unsealable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad: account.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("second-factor.key");
        let key = SealingKey::open_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = key.seal("alice", b"twenty bytes secret!");
        assert!(!sealed.windows(6).any(|w| w == b"twenty"), "the secret is not in clear");
        assert_eq!(key.open("alice", &sealed).expect("opens"), b"twenty bytes secret!");
        assert!(key.open("bob", &sealed).is_err(), "bound to the account");
        let again = SealingKey::open_or_create(&path).expect("read back");
        assert!(again.open("alice", &sealed).is_ok(), "the same key on the next start");
        let other = SealingKey::open_or_create(&dir.path().join("other.key")).expect("created");
        assert!(other.open("alice", &sealed).is_err(), "another key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SealingKey::open_or_create(&path),
            Err(KeyFileError::Permissions { .. })
        ));
    }
}
