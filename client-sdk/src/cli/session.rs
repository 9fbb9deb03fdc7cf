//! The CLI's saved login per profile: `<home>/profiles/<profile>/session.json`,
//! in a 0700 directory, as a 0600 file (it holds an access token).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use parley_specs::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

use crate::{Client, Trust};

const SESSION_FILE: &str = "session.json";
const MESSENGER_STORE_FILE: &str = "messenger.sealed";
const CA_FILE: &str = "ca.pem";

/// One logged-in device, as saved by `parley register` / `parley login`.
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
pub fn trust(ca_file: Option<&Path>) -> Trust {
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
pub fn validate_profile_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        bail!("invalid profile name {name:?}: use 1 to 64 letters, digits, '-' or '_'");
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
    pub fn new(home: &Path, name: &str) -> anyhow::Result<Self> {
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
    pub fn load(&self) -> anyhow::Result<Option<Session>> {
        let path = self.session_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is damaged; delete it and log in again", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Saves `session` atomically: written to a private temporary file in the same
    /// directory, then renamed over `session.json`. The directory is made 0700 and the
    /// file 0600.
    pub fn save(&self, session: &Session) -> anyhow::Result<()> {
        self.write_private(SESSION_FILE, &serde_json::to_vec_pretty(session)?)
    }

    /// Saves a CA certificate (PEM) to trust for this profile's server, privately and
    /// atomically like the session; returns its path.
    pub fn save_ca(&self, pem: &str) -> anyhow::Result<PathBuf> {
        self.write_private(CA_FILE, pem.as_bytes())?;
        Ok(self.dir.join(CA_FILE))
    }

    fn write_private(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // An existing directory keeps its mode; the token must stay private regardless.
        std::fs::set_permissions(&self.dir, Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", self.dir.display()))?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let result = write_new_private(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        // Make the rename durable; failing to is not worth failing the command.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Deletes the saved session; `Ok(false)` when there was none.
    pub fn forget(&self) -> anyhow::Result<bool> {
        let path = self.session_file();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
        }
    }
}

/// Creates `path` (which must not exist; a stale one is replaced) with mode 0600 and
/// writes `bytes` to it durably.
fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let open = || OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    let mut file = match open() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
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
        // A stale temporary file from a crashed run, readable by everyone.
        let stale = profile
            .dir()
            .join(format!(".{SESSION_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&stale, "old")?;
        std::fs::set_permissions(&stale, Permissions::from_mode(0o644))?;
        profile.save(&session()?)?;
        assert_eq!(mode(profile.dir())?, 0o700);
        assert_eq!(mode(&profile.session_file())?, 0o600);
        assert!(!stale.exists());
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
