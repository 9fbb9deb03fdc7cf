//! This server's signing keys as the running process sees them. The key file is the
//! source of truth: `parley-homeserver keys rotate` rewrites it, and every process
//! serving the domain notices the change within a second and signs with the new key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use parley_federation::ServerKeyring;
use parley_federation::server_key::KeyError;

const RECHECK: Duration = Duration::from_secs(1);

pub struct KeyringFile {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

struct Loaded {
    modified: Option<SystemTime>,
    checked_at: Instant,
    keyring: Arc<ServerKeyring>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl KeyringFile {
    /// Reads the key file, creating it with a new key on first start.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyError> {
        let (keyring, created) = ServerKeyring::load_or_create(path)?;
        if created {
            tracing::info!(path = %path.display(), key_id = %keyring.key_id(), "created this server's signing key");
        }
        Ok(Self {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                modified: modified(path),
                checked_at: Instant::now(),
                keyring: Arc::new(keyring),
            }),
        })
    }

    /// The keys to sign and publish with now.
    pub fn current(&self) -> Arc<ServerKeyring> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.checked_at.elapsed() >= RECHECK {
            loaded.checked_at = Instant::now();
            let now_modified = modified(&self.path);
            if now_modified != loaded.modified {
                match ServerKeyring::load(&self.path) {
                    Ok(keyring) => {
                        tracing::info!(key_id = %keyring.key_id(), "the server key file changed; signing with its key");
                        loaded.keyring = Arc::new(keyring);
                        loaded.modified = now_modified;
                    }
                    // Keep signing with the keys we have rather than with none.
                    Err(e) => tracing::error!(error = %e, "cannot reload the server key file"),
                }
            }
        }
        loaded.keyring.clone()
    }
}
