//! Encrypting files for the group, chunk by chunk (see `specs/protocol.md`, "Files").
//!
//! A file is encrypted on the device with a fresh random 256-bit key under
//! ChaCha20-Poly1305, in chunks of `chunk_size` bytes of plaintext (the last one shorter,
//! or empty for an empty file). Chunk `i` has the 12-byte nonce `i` (8 bytes, big
//! endian) `‖ 0 0 0 ‖ last` where `last` is 1 for the final chunk and 0 before, so a
//! reordered, repeated, dropped or cut-off chunk fails to decrypt (the STREAM
//! construction). The ciphertext is the chunks' ciphertexts (each 16 bytes longer than
//! its plaintext) one after the other; its SHA-256 travels in the message with the key.
//!
//! Neither side holds a whole file: [`FileEncryptor`] turns plaintext into ciphertext a
//! chunk at a time and [`FileDecryptor`] takes ciphertext in pieces of any length.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Plaintext bytes per chunk of files this SDK sends.
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// The smallest and largest chunk sizes a received file may name.
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
/// What encryption adds to each chunk (the Poly1305 tag).
pub const TAG_BYTES: u64 = 16;

/// A file's key: 32 random bytes, used for that file only.
#[derive(Clone)]
pub struct FileKey(pub [u8; 32]);

impl FileKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// Chunks of a file of `size` bytes (an empty file has one, empty).
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size)).max(1)
}

/// The length of the ciphertext of a file of `size` bytes.
pub fn ciphertext_len(size: u64, chunk_size: u32) -> u64 {
    size + TAG_BYTES * chunk_count(size, chunk_size)
}

fn nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::from(nonce)
}

/// Why a file's ciphertext was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileCryptoError {
    #[error("chunk {0} of the file does not decrypt: it was changed, reordered or cut off")]
    BadChunk(u64),
    #[error("the file's ciphertext has {got} bytes, not the {expected} its message announces")]
    WrongLength { expected: u64, got: u64 },
    #[error("the file's ciphertext does not match the hash its message carries")]
    HashMismatch,
    #[error("the message names a chunk size of {0} bytes, outside what clients use")]
    BadChunkSize(u32),
}

/// Encrypts a file's chunks in order.
pub struct FileEncryptor {
    cipher: ChaCha20Poly1305,
    chunk_size: u32,
    chunks: u64,
    next: u64,
}

impl FileEncryptor {
    pub fn new(key: &FileKey, size: u64, chunk_size: u32) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
            chunk_size,
            chunks: chunk_count(size, chunk_size),
            next: 0,
        }
    }

    /// The ciphertext of chunk `index` (its plaintext is `chunk`, `chunk_size` bytes
    /// except for the last). Chunks may be encrypted again (the same bytes come out), so
    /// an upload can resume at any chunk.
    pub fn encrypt_chunk(&self, index: u64, chunk: &[u8]) -> Vec<u8> {
        let last = index + 1 == self.chunks;
        // ChaCha20-Poly1305 only fails beyond 256 GiB per message.
        self.cipher
            .encrypt(&nonce(index, last), Payload { msg: chunk, aad: &[] })
            .unwrap_or_default()
    }

    /// The ciphertext of the next chunk.
    pub fn next_chunk(&mut self, chunk: &[u8]) -> Vec<u8> {
        let out = self.encrypt_chunk(self.next, chunk);
        self.next += 1;
        out
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn chunks(&self) -> u64 {
        self.chunks
    }
}

/// Decrypts a file's ciphertext, given in pieces of any length, checking its length and
/// its hash at the end.
pub struct FileDecryptor {
    cipher: ChaCha20Poly1305,
    chunk_ct: usize,
    chunks: u64,
    expected_len: u64,
    expected_sha256: [u8; 32],
    hasher: Sha256,
    buffer: Vec<u8>,
    next: u64,
    seen: u64,
}

impl FileDecryptor {
    pub fn new(key: &FileKey, size: u64, chunk_size: u32, sha256: [u8; 32]) -> Result<Self, FileCryptoError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(FileCryptoError::BadChunkSize(chunk_size));
        }
        let chunk_ct = chunk_size as usize + TAG_BYTES as usize;
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
            chunk_ct,
            chunks: chunk_count(size, chunk_size),
            expected_len: ciphertext_len(size, chunk_size),
            expected_sha256: sha256,
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(chunk_ct),
            next: 0,
            seen: 0,
        })
    }

    fn open(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, FileCryptoError> {
        let index = self.next;
        let last = index + 1 == self.chunks;
        let plain = self
            .cipher
            .decrypt(
                &nonce(index, last),
                Payload {
                    msg: ciphertext,
                    aad: &[],
                },
            )
            .map_err(|_| FileCryptoError::BadChunk(index))?;
        self.next += 1;
        Ok(plain)
    }

    /// Takes the next piece of ciphertext; appends the plaintext of every chunk it
    /// completes (all but the last) to `out`.
    pub fn update(&mut self, mut piece: &[u8], out: &mut Vec<u8>) -> Result<(), FileCryptoError> {
        self.seen += piece.len() as u64;
        if self.seen > self.expected_len {
            return Err(FileCryptoError::WrongLength {
                expected: self.expected_len,
                got: self.seen,
            });
        }
        self.hasher.update(piece);
        while !piece.is_empty() {
            let room = self.chunk_ct - self.buffer.len();
            let take = room.min(piece.len());
            self.buffer.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            // A full buffer is a whole chunk; the final one waits for `finish`.
            if self.buffer.len() == self.chunk_ct && self.next + 1 < self.chunks {
                let chunk = std::mem::take(&mut self.buffer);
                out.extend_from_slice(&self.open(&chunk)?);
                self.buffer = chunk;
                self.buffer.clear();
            }
        }
        Ok(())
    }

    /// The end of the ciphertext: checks its length and hash and decrypts the final
    /// chunk (appended to `out`).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), FileCryptoError> {
        if self.seen != self.expected_len {
            return Err(FileCryptoError::WrongLength {
                expected: self.expected_len,
                got: self.seen,
            });
        }
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        if digest != self.expected_sha256 {
            return Err(FileCryptoError::HashMismatch);
        }
        let chunk = std::mem::take(&mut self.buffer);
        out.extend_from_slice(&self.open(&chunk)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt_all(key: &FileKey, data: &[u8], chunk_size: u32) -> Vec<u8> {
        let mut enc = FileEncryptor::new(key, data.len() as u64, chunk_size);
        let mut out = Vec::new();
        if data.is_empty() {
            out.extend(enc.next_chunk(&[]));
        }
        for chunk in data.chunks(chunk_size as usize) {
            out.extend(enc.next_chunk(chunk));
        }
        out
    }

    fn decrypt_all(
        key: &FileKey,
        ct: &[u8],
        size: u64,
        chunk_size: u32,
        piece: usize,
    ) -> Result<Vec<u8>, FileCryptoError> {
        let sha: [u8; 32] = Sha256::digest(ct).into();
        let mut dec = FileDecryptor::new(key, size, chunk_size, sha)?;
        let mut out = Vec::new();
        for p in ct.chunks(piece.max(1)) {
            dec.update(p, &mut out)?;
        }
        dec.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_size_and_piece_length() {
        let key = FileKey::generate();
        let cs = MIN_CHUNK_SIZE;
        for size in [
            0usize,
            1,
            cs as usize - 1,
            cs as usize,
            cs as usize + 1,
            3 * cs as usize,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let ct = encrypt_all(&key, &data, cs);
            assert_eq!(ct.len() as u64, ciphertext_len(size as u64, cs));
            for piece in [1, 7, 4096, cs as usize + 16, 1 << 20] {
                if size > 20_000 && piece < 100 {
                    continue;
                }
                assert_eq!(
                    decrypt_all(&key, &ct, size as u64, cs, piece).as_deref(),
                    Ok(&data[..]),
                    "{size} {piece}"
                );
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let key = FileKey::generate();
        let cs = MIN_CHUNK_SIZE;
        let data = vec![7u8; 3 * cs as usize];
        let ct = encrypt_all(&key, &data, cs);
        let chunk = cs as usize + 16;
        // Swapping two chunks (hash recomputed by the attacker): chunk 0 no longer opens.
        let mut swapped = ct.clone();
        swapped[..chunk].copy_from_slice(&ct[chunk..2 * chunk]);
        swapped[chunk..2 * chunk].copy_from_slice(&ct[..chunk]);
        assert_eq!(
            decrypt_all(&key, &swapped, data.len() as u64, cs, 9999),
            Err(FileCryptoError::BadChunk(0))
        );
        // Cut after two chunks, announced as a two-chunk file: the second is not final.
        let cut = &ct[..2 * chunk];
        assert_eq!(
            decrypt_all(&key, cut, 2 * cs as u64, cs, 9999),
            Err(FileCryptoError::BadChunk(1))
        );
        // Another key.
        assert_eq!(
            decrypt_all(&FileKey::generate(), &ct, data.len() as u64, cs, 9999),
            Err(FileCryptoError::BadChunk(0))
        );
        // A flipped bit with the original hash: the hash check refuses it.
        let mut flipped = ct.clone();
        flipped[5] ^= 1;
        let sha: [u8; 32] = Sha256::digest(&ct).into();
        let mut dec = FileDecryptor::new(&key, data.len() as u64, cs, sha).expect("decryptor");
        let mut out = Vec::new();
        let result = dec.update(&flipped, &mut out).and_then(|()| dec.finish(&mut out));
        assert!(result.is_err());
    }
}
