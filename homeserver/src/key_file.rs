//! A 256-bit secret kept in a file outside the database, created readable by its owner
//! only on first start (the second factor's sealing key, the key directory's VRF key).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use parley_private_file as private_file;
use rand::RngCore;

pub const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or create the {what} file {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} file {path} must be readable by its owner only (mode {mode:o}); run chmod 600 on it")]
    Permissions {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error("the {what} file {path} does not hold a {KEY_BYTES}-byte key")]
    Invalid { what: &'static str, path: PathBuf },
}

/// Reads the key file, creating it (mode 0600) with a new random key if missing.
/// Concurrent first starts of several processes agree on one key. `what` names the key
/// in messages.
pub fn open_or_create(path: &Path, what: &'static str) -> Result<[u8; KEY_BYTES], KeyFileError> {
    let io = |source| KeyFileError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    if !path.exists() {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        if private_file::create(path, &key).map_err(io)? {
            tracing::info!(path = %path.display(), "created the {what} file");
        }
    }
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            what,
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    bytes.try_into().map_err(|_| KeyFileError::Invalid {
        what,
        path: path.to_owned(),
    })
}
