//! Files sealed with a passphrase: how the SDK keeps a device's secrets (MLS private keys,
//! message history) on disk. Nothing readable leaves memory unencrypted.
//!
//! Format: `PARLEY-SEALED-1` magic, Argon2id parameters (memory KiB, passes, lanes as
//! big-endian u32), a 16-byte salt, a 24-byte nonce, then XChaCha20-Poly1305 ciphertext
//! with its tag. The header is authenticated as associated data, so changing the
//! parameters, salt or nonce is detected like any other tampering.

use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

const MAGIC: &[u8] = b"PARLEY-SEALED-1\n";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + NONCE_LEN;
/// Refuse to spend more than this on one key derivation, whatever a file claims.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a Parley sealed file (or one from a newer version)")]
    NotSealed,
    #[error("wrong passphrase, or the file was changed")]
    WrongPassphraseOrTampered,
    #[error("the file asks for key derivation parameters out of range")]
    BadParameters,
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// A key derived from a passphrase for one salt and one set of Argon2id parameters.
///
/// Deriving is deliberately slow; a program that rewrites a sealed file often (the
/// message store after every batch of messages) derives once and seals many times. Each
/// [`SealKey::seal`] uses a fresh random nonce (24 bytes: random nonces never collide in
/// practice), and the salt stays the one stored in the file's header.
pub struct SealKey {
    /// Magic, parameters and salt: the header without its nonce.
    prefix: Vec<u8>,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").finish_non_exhaustive()
    }
}

impl SealKey {
    /// A key with a fresh random salt and the default (OWASP) Argon2id cost.
    pub fn new(passphrase: &[u8]) -> Result<Self, SealError> {
        let params = Params::default();
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        Self::derive(passphrase, params, &salt)
    }

    /// The key that opens `sealed`: its parameters and salt come from the file's header.
    pub fn for_sealed(passphrase: &[u8], sealed: &[u8]) -> Result<Self, SealError> {
        let header = header_of(sealed)?;
        let number = |i: usize| {
            let at = MAGIC.len() + 4 * i;
            u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let (memory, passes, lanes) = (number(0), number(1), number(2));
        if memory > MAX_MEMORY_KIB || passes > 64 || lanes > 64 {
            return Err(SealError::BadParameters);
        }
        let params = Params::new(memory, passes, lanes, None).map_err(|_| SealError::BadParameters)?;
        Self::derive(
            passphrase,
            params,
            &header[MAGIC.len() + 12..MAGIC.len() + 12 + SALT_LEN],
        )
    }

    fn derive(passphrase: &[u8], params: Params, salt: &[u8]) -> Result<Self, SealError> {
        let mut prefix = Vec::with_capacity(HEADER_LEN - NONCE_LEN);
        prefix.extend_from_slice(MAGIC);
        for n in [params.m_cost(), params.t_cost(), params.p_cost()] {
            prefix.extend_from_slice(&n.to_be_bytes());
        }
        prefix.extend_from_slice(salt);
        Ok(Self {
            cipher: cipher(passphrase, salt, params)?,
            prefix,
        })
    }

    /// Whether `sealed` was sealed with this key's parameters and salt (so
    /// [`SealKey::open`] can try it without deriving again).
    pub fn fits(&self, sealed: &[u8]) -> bool {
        sealed.len() >= HEADER_LEN && sealed.starts_with(&self.prefix)
    }

    /// Encrypts `plaintext` with a fresh nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        header.extend_from_slice(&self.prefix);
        header.extend_from_slice(&nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &header,
                },
            )
            .map_err(|_| SealError::BadParameters)?;
        header.extend_from_slice(&sealed);
        Ok(header)
    }

    /// Decrypts `sealed`; any change to its bytes, or another key, is an error.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        header_of(sealed)?;
        if !self.fits(sealed) {
            return Err(SealError::WrongPassphraseOrTampered);
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(&header[HEADER_LEN - NONCE_LEN..]),
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map_err(|_| SealError::WrongPassphraseOrTampered)
    }
}

fn header_of(sealed: &[u8]) -> Result<&[u8], SealError> {
    if sealed.len() < HEADER_LEN || !sealed.starts_with(MAGIC) {
        return Err(SealError::NotSealed);
    }
    Ok(&sealed[..HEADER_LEN])
}

/// Encrypts `plaintext` under a key derived from `passphrase` with Argon2id (OWASP cost).
pub fn seal(passphrase: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    SealKey::new(passphrase)?.seal(plaintext)
}

/// Decrypts what `seal` produced; any change to the bytes is an error.
pub fn open(passphrase: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    SealKey::for_sealed(passphrase, sealed)?.open(sealed)
}

fn cipher(passphrase: &[u8], salt: &[u8], params: Params) -> Result<XChaCha20Poly1305, SealError> {
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut key)
        .map_err(|_| SealError::BadParameters)?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    key.iter_mut().for_each(|b| *b = 0);
    Ok(cipher)
}

/// Seals `plaintext` into `path` atomically, owner-only (see [`write_private`]).
pub fn write_sealed(path: &Path, passphrase: &[u8], plaintext: &[u8]) -> Result<(), SealError> {
    write_private(path, &seal(passphrase, plaintext)?)
}

/// Writes `bytes` to `path` readable by its owner only, atomically and durably: a reader
/// sees the old file or the new one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    parley_private_file::write(path, bytes).map_err(|source| SealError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Opens a file written by `write_sealed`.
pub fn read_sealed(path: &Path, passphrase: &[u8]) -> Result<Vec<u8>, SealError> {
    let bytes = std::fs::read(path).map_err(|source| SealError::Io {
        path: path.display().to_string(),
        source,
    })?;
    open(passphrase, &bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn round_trip_and_nothing_readable() {
        let secret = b"private key bytes and a message: meet at noon";
        let sealed = seal(b"correct horse", secret).expect("seal");
        assert!(
            !sealed.windows(12).any(|w| secret.windows(12).any(|s| s == w)),
            "plaintext leaked"
        );
        assert_eq!(open(b"correct horse", &sealed).expect("open"), secret);
        assert_ne!(
            seal(b"correct horse", secret).expect("seal"),
            sealed,
            "fresh salt and nonce each time"
        );
    }

    #[test]
    fn wrong_passphrase_and_tampering_are_refused() {
        let sealed = seal(b"correct horse", b"secret").expect("seal");
        assert!(matches!(
            open(b"wrong horse", &sealed),
            Err(SealError::WrongPassphraseOrTampered)
        ));
        for at in [MAGIC.len() + 13, HEADER_LEN - 1, HEADER_LEN, sealed.len() - 1] {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            assert!(
                open(b"correct horse", &changed).is_err(),
                "a change at {at} went unnoticed"
            );
        }
        assert!(matches!(open(b"correct horse", b"hello"), Err(SealError::NotSealed)));
        let mut greedy = sealed.clone();
        greedy[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(open(b"correct horse", &greedy), Err(SealError::BadParameters)));
    }

    #[test]
    fn a_derived_key_seals_many_times() {
        let key = SealKey::new(b"correct horse").expect("derive");
        let (one, two) = (key.seal(b"first").expect("seal"), key.seal(b"second").expect("seal"));
        assert!(key.fits(&one) && key.fits(&two));
        assert_ne!(
            one[HEADER_LEN - NONCE_LEN..HEADER_LEN],
            two[HEADER_LEN - NONCE_LEN..HEADER_LEN]
        );
        // Anyone with the passphrase opens them; the salt comes from the header.
        assert_eq!(open(b"correct horse", &two).expect("open"), b"second");
        assert_eq!(key.open(&one).expect("open"), b"first");
        // A file sealed under another salt is not this key's.
        let other = seal(b"correct horse", b"third").expect("seal");
        assert!(!key.fits(&other));
        assert!(matches!(key.open(&other), Err(SealError::WrongPassphraseOrTampered)));
    }

    #[test]
    fn files_are_private_and_replaced_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.sealed");
        write_sealed(&path, b"pass phrase", b"first").expect("write");
        write_sealed(&path, b"pass phrase", b"second").expect("rewrite");
        assert_eq!(read_sealed(&path, b"pass phrase").expect("read"), b"second");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            1,
            "no temporary file is left"
        );
    }
}
