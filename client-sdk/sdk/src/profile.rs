//! Profiles: where a device's login and message store are kept on this computer,
//! `<home>/profiles/<profile>/` (a 0700 directory), with the saved session in
//! `session.json` (a 0600 file: it holds an access token). The `parley` CLI and
//! `parley ui` share them.

use std::fs::{DirBuilder, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use parley_specs::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

use crate::{Client, Trust};

const SESSION_FILE: &str = "session.json";
const MESSENGER_STORE_FILE: &str = "messenger.sealed";
const CA_FILE: &str = "ca.pem";

/// What can go wrong with a profile's files.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile name is not 1 to 64 characters of `a-z A-Z 0-9 _ -`.
    #[error("invalid profile name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// The saved session is not readable JSON.
    #[error("{} is damaged; delete it and log in again", path.display())]
    Damaged {
        /// The session file.
        path: PathBuf,
    },
    /// A file or the directory could not be read, written or deleted.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        /// What was attempted: "read", "write", "create", "restrict", "delete".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        error: std::io::Error,
    },
}

/// One logged-in device, as saved by a sign-in (see [`Profile::sign_in`]).
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// The homeserver's base URL.
    pub server: url::Url,
    /// Absolute path of the CA file to trust; `None` means the system roots.
    pub ca_file: Option<PathBuf>,
    /// The account.
    pub user_id: UserId,
    /// This profile's device.
    pub device_id: DeviceId,
    /// The device's access token (secret; never printed).
    pub access_token: String,
}

impl Session {
    /// A client of the session's server, acting as its device.
    pub fn client(&self) -> Result<Client, crate::Error> {
        Ok(Client::new(self.server.clone(), trust(self.ca_file.as_deref()))?.with_token(self.access_token.clone()))
    }
}

/// The CA file to trust, or the system roots without one.
pub(crate) fn trust(ca_file: Option<&Path>) -> Trust {
    ca_file.map_or(Trust::SystemRoots, |p| Trust::CaFile(p.to_owned()))
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server.as_str())
            .field("ca_file", &self.ca_file)
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

/// Checks a profile name: 1 to 64 characters of `a-z A-Z 0-9 _ -` (so it is always a
/// single, harmless path component).
fn validate_profile_name(name: &str) -> Result<(), ProfileError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(ProfileError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Where one profile keeps its files: `<home>/profiles/<name>/`.
#[derive(Debug, Clone)]
pub struct Profile {
    name: String,
    dir: PathBuf,
}

impl Profile {
    /// The profile `name` under `home`; fails for an invalid name
    /// (see [`validate_profile_name`]). Touches no file.
    pub fn new(home: &Path, name: &str) -> Result<Self, ProfileError> {
        validate_profile_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            dir: home.join("profiles").join(name),
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the saved session.
    pub fn session_file(&self) -> PathBuf {
        self.dir.join(SESSION_FILE)
    }

    /// The sealed store of the profile's messenger (MLS state and history).
    pub fn messenger_store(&self) -> PathBuf {
        self.dir.join(MESSENGER_STORE_FILE)
    }

    /// The saved session, or `None` when the profile is not logged in.
    pub fn load(&self) -> Result<Option<Session>, ProfileError> {
        let path = self.session_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| ProfileError::Damaged { path }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ProfileError::Io {
                action: "read",
                path,
                error,
            }),
        }
    }

    /// Saves `session` privately and atomically (a reader sees the old session or the
    /// new one) in the profile's 0700 directory.
    pub fn save(&self, session: &Session) -> Result<(), ProfileError> {
        let json = serde_json::to_vec_pretty(session).map_err(|e| ProfileError::Io {
            action: "write",
            path: self.session_file(),
            // Only a CA file path that is not UTF-8 cannot be written as JSON.
            error: e.into(),
        })?;
        self.write_private(SESSION_FILE, &json)
    }

    /// Saves a CA certificate (PEM) to trust for this profile's server, privately and
    /// atomically like the session; returns its path.
    pub fn save_ca(&self, pem: &str) -> Result<PathBuf, ProfileError> {
        self.write_private(CA_FILE, pem.as_bytes())?;
        Ok(self.dir.join(CA_FILE))
    }

    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), ProfileError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |error| ProfileError::Io { action, path, error }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io("create", &self.dir))?;
        // An existing directory keeps its mode; the token must stay private regardless.
        std::fs::set_permissions(&self.dir, Permissions::from_mode(0o700)).map_err(io("restrict", &self.dir))?;
        let path = self.dir.join(name);
        parley_private_file::write(&path, bytes).map_err(io("write", &path))
    }

    /// Deletes the saved session; `Ok(false)` when there was none.
    pub fn forget(&self) -> Result<bool, ProfileError> {
        let path = self.session_file();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(ProfileError::Io {
                action: "delete",
                path,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    fn session() -> anyhow::Result<Session> {
        Ok(Session {
            server: "https://localhost:8443".parse()?,
            ca_file: Some("/tmp/ca.pem".into()),
            user_id: UserId::parse("alice@localhost:8443")?,
            device_id: DeviceId::parse("ABCDEF")?,
            access_token: "pat_secret".into(),
        })
    }

    fn mode(path: &Path) -> anyhow::Result<u32> {
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    }

    #[test]
    fn round_trip_with_private_permissions() -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let profile = Profile::new(home.path(), "work")?;
        assert!(profile.load()?.is_none());
        profile.save(&session()?)?;
        let loaded = profile.load()?.context("saved session")?;
        assert_eq!(loaded.access_token, "pat_secret");
        assert_eq!(loaded.user_id.as_str(), "alice@localhost:8443");
        assert_eq!(loaded.device_id.as_str(), "ABCDEF");
        assert_eq!(loaded.server.as_str(), "https://localhost:8443/");
        assert_eq!(loaded.ca_file.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(profile.session_file(), home.path().join("profiles/work/session.json"));
        assert_eq!(mode(&profile.session_file())?, 0o600);
        assert_eq!(mode(profile.dir())?, 0o700);
        // Only the session file is left behind, no temporary file.
        assert_eq!(std::fs::read_dir(profile.dir())?.count(), 1);

        // Saving again replaces the session and keeps the permissions.
        let mut other = session()?;
        other.access_token = "pat_second".into();
        profile.save(&other)?;
        assert_eq!(profile.load()?.context("saved")?.access_token, "pat_second");
        assert_eq!(mode(&profile.session_file())?, 0o600);

        assert!(profile.forget()?);
        assert!(profile.load()?.is_none());
        assert!(!profile.forget()?, "forgetting twice is fine");
        Ok(())
    }

    #[test]
    fn loose_directory_permissions_are_tightened() -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let profile = Profile::new(home.path(), "default")?;
        std::fs::create_dir_all(profile.dir())?;
        std::fs::set_permissions(profile.dir(), Permissions::from_mode(0o755))?;
        profile.save(&session()?)?;
        assert_eq!(mode(profile.dir())?, 0o700);
        assert_eq!(mode(&profile.session_file())?, 0o600);
        Ok(())
    }

    #[test]
    fn damaged_files_are_reported() -> anyhow::Result<()> {
        let home = tempfile::tempdir()?;
        let profile = Profile::new(home.path(), "default")?;
        std::fs::create_dir_all(profile.dir())?;
        std::fs::write(profile.session_file(), "{not json")?;
        let err = profile.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("damaged"), "{err}");
        Ok(())
    }

    #[test]
    fn profile_names_are_checked() {
        let home = Path::new("/nonexistent");
        let long = "x".repeat(65);
        for bad in ["", ".", "..", "../x", "a/b", "with space", "é", "a.b", long.as_str()] {
            assert!(Profile::new(home, bad).is_err(), "{bad:?}");
        }
        for good in ["default", "Work_2-b", "x", &"x".repeat(64)] {
            assert!(validate_profile_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn debug_hides_the_token() -> anyhow::Result<()> {
        let shown = format!("{:?}", session()?);
        assert!(!shown.contains("pat_secret") && shown.contains("redacted"), "{shown}");
        Ok(())
    }
}
