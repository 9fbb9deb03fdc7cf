//! Bearer tokens kept in files readable by their owner only: the admin API's
//! (`[admin] token_file`) and the metrics scraper's (`[metrics] token_file`). The server
//! keeps only a token's SHA-256 and compares in constant time; `parley-homeserver admin`
//! reads the admin file to send it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use subtle::ConstantTimeEq;

use parley_private_file as private_file;

/// Shorter tokens are refused: a token is the only thing guarding what it opens.
pub const MIN_TOKEN_CHARS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the token file {path} must be readable by its owner only (mode {mode:o}); run chmod 600 on it")]
    Permissions { path: String, mode: u32 },
    #[error(
        "the token file {path} must hold one token of at least {MIN_TOKEN_CHARS} visible ASCII characters (e.g. `openssl rand -base64 33`)"
    )]
    Invalid { path: String },
}

/// Reads the token, refusing a file others may read and a token too short to be one.
pub fn load(path: &Path) -> Result<String, TokenError> {
    let shown = path.display().to_string();
    let metadata = std::fs::metadata(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TokenError::Permissions {
            path: shown,
            mode: mode & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: shown.clone(),
        source,
    })?;
    let token = text.trim();
    if token.chars().count() < MIN_TOKEN_CHARS || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(TokenError::Invalid { path: shown });
    }
    Ok(token.to_owned())
}

/// A new random token (256 bits), for `parley-homeserver dev`.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ptok_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A loaded token, of which only the hash is kept.
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Loads the token file (see [`load`]).
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        Ok(Self(crate::credentials::token_hash(&load(path)?)))
    }

    /// Whether the request carries `Authorization: Bearer <this token>`.
    pub fn presented_in(&self, headers: &actix_web::http::header::HeaderMap) -> Bearer {
        let Some(token) = headers
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
        else {
            return Bearer::Missing;
        };
        if bool::from(crate::credentials::token_hash(token).ct_eq(&self.0)) {
            Bearer::Right
        } else {
            Bearer::Wrong
        }
    }
}

/// What a request's `Authorization` header held.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer {
    Missing,
    Wrong,
    Right,
}

/// Creates the token file (mode 0600) with a new token unless it exists.
pub fn create_if_missing(path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    private_file::write(path, format!("{}\n", generate()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_private_file_with_a_long_token_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        create_if_missing(&path).expect("create");
        let token = load(&path).expect("a generated token loads");
        assert!(token.len() >= MIN_TOKEN_CHARS);
        create_if_missing(&path).expect("kept");
        assert_eq!(load(&path).expect("same"), token);

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(matches!(load(&path), Err(TokenError::Permissions { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");

        private_file::write(&path, b"short\n").expect("write");
        assert!(matches!(load(&path), Err(TokenError::Invalid { .. })));
        private_file::write(&path, "with spaces inside the token, long enough".as_bytes()).expect("write");
        assert!(matches!(load(&path), Err(TokenError::Invalid { .. })));
        assert!(matches!(
            load(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }
}
