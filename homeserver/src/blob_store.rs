//! Where blobs (encrypted files' ciphertext) live: behind [`BlobStore`], so another
//! backend (an S3-compatible object store) can replace the filesystem. Only bytes go
//! through here; what a blob is and who may read it is in PostgreSQL (`store::files`).
//!
//! Both directions are streams of bounded pieces: nothing here holds a whole blob.

use std::io;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

/// A writer appending to a blob.
pub type BlobWriter = Box<dyn AsyncWrite + Send + Unpin>;
/// A reader of a blob from its start.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// A store of blobs by id (ids are checked 43-character base64url strings).
pub trait BlobStore: Send + Sync {
    /// A writer that appends to the blob after its first `offset` bytes (anything the
    /// store holds past `offset`, e.g. from an interrupted write, is dropped first).
    fn append_at(&self, id: &str, offset: u64) -> BoxFuture<'_, io::Result<BlobWriter>>;
    /// Makes what was written durable (called when a writer ends).
    fn sync(&self, id: &str) -> BoxFuture<'_, io::Result<()>>;
    /// A reader of the whole blob; `NotFound` when there is none.
    fn read(&self, id: &str) -> BoxFuture<'_, io::Result<BlobReader>>;
    /// Deletes the blob; deleting one that is not there is not an error.
    fn delete(&self, id: &str) -> BoxFuture<'_, io::Result<()>>;
}

/// Blobs as files of one directory (`[files] dir`), one per blob, named by id, in
/// subdirectories by the id's first two characters.
pub struct FsBlobStore {
    dir: PathBuf,
}

impl FsBlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, id: &str) -> io::Result<PathBuf> {
        if !parley_specs::files_api::is_blob_id(id) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a blob id"));
        }
        Ok(self.dir.join(&id[..2]).join(id))
    }
}

async fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

impl BlobStore for FsBlobStore {
    fn append_at(&self, id: &str, offset: u64) -> BoxFuture<'_, io::Result<BlobWriter>> {
        let path = self.path(id);
        Box::pin(async move {
            let path = path?;
            if let Some(parent) = path.parent() {
                create_private_dir(parent).await?;
            }
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).write(true).truncate(false);
            #[cfg(unix)]
            options.mode(0o600);
            let file = options.open(&path).await?;
            file.set_len(offset).await?;
            let mut file = file;
            tokio::io::AsyncSeekExt::seek(&mut file, io::SeekFrom::Start(offset)).await?;
            Ok(Box::new(file) as BlobWriter)
        })
    }

    fn sync(&self, id: &str) -> BoxFuture<'_, io::Result<()>> {
        let path = self.path(id);
        Box::pin(async move {
            let file = tokio::fs::OpenOptions::new().write(true).open(path?).await?;
            file.sync_all().await
        })
    }

    fn read(&self, id: &str) -> BoxFuture<'_, io::Result<BlobReader>> {
        let path = self.path(id);
        Box::pin(async move {
            let file = tokio::fs::File::open(path?).await?;
            Ok(Box::new(file) as BlobReader)
        })
    }

    fn delete(&self, id: &str) -> BoxFuture<'_, io::Result<()>> {
        let path = self.path(id);
        Box::pin(async move {
            match tokio::fs::remove_file(path?).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn append_resume_read_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::new(dir.path().join("blobs"));
        let id = "a".repeat(43);
        let mut w = store.append_at(&id, 0).await.expect("open");
        w.write_all(b"hello wor").await.expect("write");
        w.flush().await.expect("flush");
        drop(w);
        // An interrupted write left "wor"; the upload had recorded 6 bytes.
        let mut w = store.append_at(&id, 6).await.expect("reopen");
        w.write_all(b"world").await.expect("write");
        w.flush().await.expect("flush");
        drop(w);
        store.sync(&id).await.expect("sync");
        let mut text = String::new();
        store
            .read(&id)
            .await
            .expect("read")
            .read_to_string(&mut text)
            .await
            .expect("read");
        assert_eq!(text, "hello world");
        store.delete(&id).await.expect("delete");
        store.delete(&id).await.expect("deleting again is fine");
        assert!(store.read(&id).await.is_err());
        assert!(store.append_at("../x", 0).await.is_err(), "not a blob id");
    }
}
