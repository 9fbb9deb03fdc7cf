//! Passwords and access tokens.
//!
//! Passwords are hashed with Argon2id at OWASP's recommended cost (19 MiB, 2 passes,
//! 1 lane: the `argon2` crate's defaults) on the CPU pool, never on a request
//! thread. Access tokens are 256 random bits; the server stores only their SHA-256.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::cpu_pool::PasswordHashes;
use crate::error::ApiError;

/// Prefix that lets secret scanners recognize a leaked Parley token.
const TOKEN_PREFIX: &str = "pat_";

pub struct AccessToken {
    /// Given to the client once.
    pub secret: String,
    pub hash: [u8; 32],
}

pub fn new_access_token() -> AccessToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = token_hash(&secret);
    AccessToken { secret, hash }
}

pub fn token_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn new_device_id() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 12).to_ascii_uppercase()
}

pub async fn hash_password(hashes: &PasswordHashes, password: String) -> Result<String, ApiError> {
    hashes
        .run(move || {
            let salt = new_salt()?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| ApiError::internal("password hashing failed", e))
}

/// Checks `password` against a stored hash. With no stored hash (unknown user) it
/// verifies against a fixed dummy so the answer takes as long either way.
pub async fn verify_password(
    hashes: &PasswordHashes,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    hashes
        .run(move || {
            let stored_or_dummy = stored.as_deref().unwrap_or_else(|| dummy_hash());
            let parsed = PasswordHash::new(stored_or_dummy).ok();
            let matches =
                parsed.is_some_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok());
            matches && stored.is_some()
        })
        .await
}

fn new_salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        new_salt()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"parley timing equalizer", &salt)
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn password_round_trip() {
        let hash = hash_password(&PasswordHashes::default(), "correct horse battery".into())
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(
            verify_password(
                &PasswordHashes::default(),
                "correct horse battery".into(),
                Some(hash.clone())
            )
            .await
            .expect("ok")
        );
        assert!(
            !verify_password(&PasswordHashes::default(), "wrong horse battery".into(), Some(hash))
                .await
                .expect("ok")
        );
        assert!(
            !verify_password(&PasswordHashes::default(), "anything at all".into(), None)
                .await
                .expect("ok")
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_access_token();
        let b = new_access_token();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(token_hash(&a.secret), a.hash);
    }
}
