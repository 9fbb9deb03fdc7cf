//! The CLI's saved login per profile: `<home>/profiles/<profile>/session.json`,
//! in a 0700 directory, as a 0600 file (it holds an access token).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use parley_specs::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub server: url::Url,
    /// Absolute path of the CA file to trust; None means the system roots.
    pub ca_file: Option<PathBuf>,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub access_token: String,
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

/// Where one profile keeps its files.
pub struct Profile {
    dir: PathBuf,
}

impl Profile {
    pub fn new(home: &Path, name: &str) -> anyhow::Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            bail!("profile names are 1 to 64 characters of letters, digits, '-' and '_' (got {name:?})");
        }
        Ok(Self { dir: home.join("profiles").join(name) })
    }

    fn session_file(&self) -> PathBuf {
        self.dir.join("session.json")
    }

    pub fn load(&self) -> anyhow::Result<Option<Session>> {
        let path = self.session_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is damaged; delete it and log in again", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, session: &Session) -> anyhow::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.session_file();
        let tmp = self.dir.join("session.json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(session)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn forget(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.session_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn session() -> Session {
        Session {
            server: "https://localhost:8443".parse().expect("url"),
            ca_file: Some("/tmp/ca.pem".into()),
            user_id: UserId::parse("alice@localhost:8443").expect("id"),
            device_id: DeviceId::parse("ABCDEF").expect("id"),
            access_token: "pat_secret".into(),
        }
    }

    #[test]
    fn round_trip_with_private_permissions() {
        let home = tempfile::tempdir().expect("tempdir");
        let profile = Profile::new(home.path(), "work").expect("valid");
        assert!(profile.load().expect("load").is_none());
        profile.save(&session()).expect("save");
        let loaded = profile.load().expect("load").expect("present");
        assert_eq!(loaded.access_token, "pat_secret");
        assert_eq!(loaded.user_id.as_str(), "alice@localhost:8443");
        let file_mode = std::fs::metadata(profile.session_file()).expect("meta").permissions().mode();
        let dir_mode = std::fs::metadata(&profile.dir).expect("meta").permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(dir_mode & 0o777, 0o700);
        profile.forget().expect("forget");
        assert!(profile.load().expect("load").is_none());
        profile.forget().expect("forgetting twice is fine");
    }

    #[test]
    fn profile_names_are_checked() {
        let home = Path::new("/tmp");
        for bad in ["", "../x", "a/b", "with space", &"x".repeat(65)] {
            assert!(Profile::new(home, bad).is_err(), "{bad:?}");
        }
        assert!(Profile::new(home, "Work_2-b").is_ok());
    }

    #[test]
    fn debug_hides_the_token() {
        assert!(!format!("{:?}", session()).contains("pat_secret"));
    }
}
