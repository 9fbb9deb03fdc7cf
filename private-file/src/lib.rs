//! Files only their owner may read, written atomically and durably.
//!
//! Secrets (server keys, tokens, session files, sealed MLS state) must never be seen
//! half-written, with a looser mode, or by a concurrent writer's rename. So every write
//! goes to a temporary file with a name no other writer uses, created new with mode 0600
//! (never a leftover file with another mode), synced, then renamed (or hard-linked, to
//! keep an existing file) into place, and the directory is synced so the new name
//! survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` readable by its owner only, replacing any previous file.
/// A reader sees the old contents or the new, never a mix.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    put(path, bytes, |tmp| fs::rename(tmp, path)).map(drop)
}

/// Writes `bytes` to `path` readable by its owner only unless `path` exists;
/// `Ok(false)` when it existed and was kept. Of concurrent creators exactly one wins,
/// and the others read what it wrote.
pub fn create(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    put(path, bytes, |tmp| {
        // A hard link, unlike a rename, fails when the target exists.
        let linked = fs::hard_link(tmp, path);
        fs::remove_file(tmp)?;
        linked
    })
    .or_else(|e| match e.kind() {
        ErrorKind::AlreadyExists => Ok(false),
        _ => Err(e),
    })
}

fn put(path: &Path, bytes: &[u8], install: impl FnOnce(&Path) -> std::io::Result<()>) -> std::io::Result<bool> {
    let dir = parent(path);
    let tmp = temporary_name(path, dir)?;
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        install(&tmp)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()?;
    Ok(true)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A name beside `path` that no other writer, in this process or another, uses.
fn temporary_name(path: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "the path names no file"))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut name = std::ffi::OsString::from(".");
    name.push(file_name);
    name.push(format!(
        ".{}-{}-{nanos:08x}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_replaces_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn create_keeps_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        assert!(create(&path, b"first").unwrap());
        assert!(!create(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn concurrent_writers_never_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.json");
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        write(&path, &[i; 4096]).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let contents = fs::read(&path).unwrap();
        assert_eq!(contents.len(), 4096);
        assert!(contents.iter().all(|b| *b == contents[0]), "one writer's bytes, whole");
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(&dir.path().join("absent/secret"), b"x").is_err());
    }
}
