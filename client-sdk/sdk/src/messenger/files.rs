//! Sending and downloading encrypted files (`crate::files` has the encryption). The file
//! is encrypted and uploaded in pieces before its message is sent, without holding the
//! store's lock (an upload may take minutes); its message carries the blob's origin and
//! id, the key, the ciphertext's hash, size, media type and name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parley_specs::files_api::CreateUploadRequest;
use parley_specs::{ErrorCode, GroupId};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::envelope::{Envelope, FileAttachment};
use super::error::MessengerError;
use super::history::HistoryMessage;
use super::send::SentMessage;
use super::{Messenger, Result};
use crate::Error;
use crate::files::{DEFAULT_CHUNK_SIZE, FileDecryptor, FileEncryptor, FileKey, ciphertext_len};

/// Ciphertext bytes per `PUT` of an upload (whole chunks).
const PUT_CHUNKS: u64 = 32;
/// Attempts at one piece of an upload after a network failure or a server fault.
const UPLOAD_RETRIES: u32 = 5;
/// Time allowed for a whole download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How far a transfer is: bytes done of the total (ciphertext bytes).
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// The media type of a file, from its extension.
pub fn guess_media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "json" => "application/json",
        "zip" => "application/zip",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> MessengerError {
    MessengerError::FileIo {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Whether an upload's piece may be sent again after this error.
fn retryable(err: &Error) -> bool {
    match err {
        Error::Transport { .. } => true,
        Error::Api { status, .. } => *status >= 500 || err.code() == Some(ErrorCode::UploadOffsetMismatch),
        _ => false,
    }
}

impl Messenger {
    /// Encrypts the file at `path` with a fresh key, uploads it to this device's server
    /// and sends it to the group with optional `text` (disappearing like a text message:
    /// `expires_in`, or the conversation's timer; the blob is deleted with it).
    /// `progress` hears how many bytes of ciphertext were uploaded.
    pub async fn send_file(
        &mut self,
        group_id: &GroupId,
        path: &Path,
        text: Option<&str>,
        expires_in: Option<Duration>,
        progress: Progress<'_>,
    ) -> Result<SentMessage> {
        if let Some(text) = text {
            super::send::check_text_length(text)?;
        }
        // The checks a text message gets, before the upload.
        let lock = self.begin().await?;
        let checked = async {
            self.prepare_online(&lock).await?;
            let blocked = self.changed_contacts_in(group_id)?;
            if !blocked.is_empty() {
                self.save(&lock)?;
                return Err(MessengerError::VerifiedContactChanged { users: blocked });
            }
            Ok(expires_in.or_else(|| self.conversation_timer(group_id)))
        }
        .await;
        let expires_in = self.end(lock, checked)?;
        let expires_at = match expires_in {
            None => None,
            Some(wait) => Some(
                time::Duration::try_from(wait)
                    .ok()
                    .and_then(|wait| OffsetDateTime::now_utc().checked_add(wait))
                    .ok_or_else(|| MessengerError::Mls("the expiry is too far in the future".into()))?,
            ),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        let attachment = self
            .upload_file(group_id, path, expires_at, progress)
            .await?
            .into_attachment(name, guess_media_type(path), text, expires_at);

        let lock = self.begin().await?;
        let sent = async {
            let sent_at = OffsetDateTime::now_utc();
            let envelope = Envelope::File(attachment.clone());
            let accepted = self.send_envelope(&lock, group_id, &envelope, expires_at).await?;
            let message = HistoryMessage {
                expires_at,
                attachment: Some(Box::new(attachment)),
                ..HistoryMessage::new(
                    accepted.seq,
                    self.state.user_id.clone(),
                    self.state.device_id.clone(),
                    sent_at,
                    text.unwrap_or_default().to_owned(),
                )
            };
            if let Some(conversation) = self.state.conversations.get_mut(group_id) {
                conversation.record(message);
            }
            self.save(&lock)?;
            Ok(SentMessage {
                group_id: group_id.clone(),
                seq: accepted.seq,
                epoch: accepted.epoch,
                sent_at,
                expires_at,
            })
        }
        .await;
        self.end(lock, sent)
    }

    /// Encrypts and uploads the file; resumes from the server's offset after a network
    /// failure.
    async fn upload_file(
        &self,
        group_id: &GroupId,
        path: &Path,
        expires_at: Option<OffsetDateTime>,
        progress: Progress<'_>,
    ) -> Result<Uploaded> {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| io_error(path, e))?;
        let size = file.metadata().await.map_err(|e| io_error(path, e))?.len();
        let chunk_size = DEFAULT_CHUNK_SIZE;
        let total = ciphertext_len(size, chunk_size);
        let key = FileKey::generate();
        let encryptor = FileEncryptor::new(&key, size, chunk_size);
        let upload = self
            .client
            .create_upload(&CreateUploadRequest {
                group_id: group_id.clone(),
                size: total,
                expires_at,
            })
            .await?;
        let chunk_ct = u64::from(chunk_size) + crate::files::TAG_BYTES;
        let mut index = 0u64;
        let mut hasher = Sha256::new();
        let mut server_at = 0u64;
        let mut failures = 0;
        let mut plain = vec![0u8; chunk_size as usize];
        progress(0, total);
        while index < encryptor.chunks() {
            let batch_index = index;
            let batch_start = index * chunk_ct;
            let batch_hasher = hasher.clone();
            file.seek(std::io::SeekFrom::Start(index * u64::from(chunk_size)))
                .await
                .map_err(|e| io_error(path, e))?;
            let mut body = Vec::with_capacity((PUT_CHUNKS * chunk_ct) as usize);
            while index < encryptor.chunks() && index < batch_index + PUT_CHUNKS {
                let len = (size - index * u64::from(chunk_size)).min(u64::from(chunk_size)) as usize;
                file.read_exact(&mut plain[..len])
                    .await
                    .map_err(|e| io_error(path, e))?;
                let ct = encryptor.encrypt_chunk(index, &plain[..len]);
                hasher.update(&ct);
                body.extend_from_slice(&ct);
                index += 1;
            }
            let batch_end = batch_start + body.len() as u64;
            if server_at < batch_end {
                let skip = server_at.saturating_sub(batch_start);
                body.drain(..skip as usize);
                match self.client.put_upload(&upload.blob_id, batch_start + skip, body).await {
                    Ok(state) => {
                        server_at = state.offset;
                        failures = 0;
                    }
                    Err(err) if retryable(&err) && failures < UPLOAD_RETRIES => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(500) * failures).await;
                        server_at = self.client.upload_state(&upload.blob_id).await?.offset;
                        // Encrypt this batch again (the same bytes) and send what is missing.
                        index = batch_index;
                        hasher = batch_hasher;
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                }
            }
            progress(batch_end, total);
        }
        self.client.complete_upload(&upload.blob_id).await?;
        Ok(Uploaded {
            server: upload.server,
            blob_id: upload.blob_id,
            key,
            sha256: hex::encode(hasher.finalize()),
            size,
            chunk_size,
        })
    }

    /// The file attached to message `seq` of the group, downloaded through this device's
    /// server, checked (length, hash, every chunk) and decrypted into `out` (written to a
    /// temporary file beside it, renamed into place once everything checked out).
    /// `progress` hears how many bytes of ciphertext arrived.
    pub async fn download_file(
        &mut self,
        group_id: &GroupId,
        seq: i64,
        out: &Path,
        progress: Progress<'_>,
    ) -> Result<FileAttachment> {
        let lock = self.begin().await?;
        let found = self
            .conversation(group_id)
            .and_then(|c| {
                c.messages(None, OffsetDateTime::now_utc())
                    .into_iter()
                    .find(|m| m.seq == seq)
                    .ok_or_else(|| MessengerError::UnknownMessage {
                        group: group_id.clone(),
                        seq,
                    })
            })
            .and_then(|m| {
                m.attachment.map(|a| *a).ok_or_else(|| MessengerError::NoFile {
                    group: group_id.clone(),
                    seq,
                })
            });
        let attachment = self.end(lock, found)?;
        let partial = partial_path(out);
        let result = self.fetch_into(&attachment, &partial, progress).await;
        match result {
            Ok(()) => {
                tokio::fs::rename(&partial, out).await.map_err(|e| io_error(out, e))?;
                Ok(attachment)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(e)
            }
        }
    }

    async fn fetch_into(&self, file: &FileAttachment, partial: &Path, progress: Progress<'_>) -> Result<()> {
        let key: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&file.key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| MessengerError::FileRefused("the message carries no valid key".into()))?;
        let sha256: [u8; 32] = hex::decode(&file.sha256)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| MessengerError::FileRefused("the message carries no valid hash".into()))?;
        let mut decryptor = FileDecryptor::new(&FileKey(key), file.size, file.chunk_size, sha256)
            .map_err(|e| MessengerError::FileRefused(e.to_string()))?;
        let total = ciphertext_len(file.size, file.chunk_size);
        let mut response = self
            .client
            .download_blob(file.server.as_str(), &file.blob_id, DOWNLOAD_TIMEOUT)
            .await?;
        let mut out = tokio::fs::File::create(partial)
            .await
            .map_err(|e| io_error(partial, e))?;
        let mut plain = Vec::new();
        let mut done = 0u64;
        progress(0, total);
        loop {
            let piece = response.chunk().await.map_err(|e| {
                MessengerError::Api(Error::Transport {
                    url: file.server.to_string(),
                    reason: e.to_string(),
                })
            })?;
            let Some(piece) = piece else { break };
            decryptor
                .update(&piece, &mut plain)
                .map_err(|e| MessengerError::FileRefused(e.to_string()))?;
            out.write_all(&plain).await.map_err(|e| io_error(partial, e))?;
            plain.clear();
            done += piece.len() as u64;
            progress(done, total);
        }
        decryptor
            .finish(&mut plain)
            .map_err(|e| MessengerError::FileRefused(e.to_string()))?;
        out.write_all(&plain).await.map_err(|e| io_error(partial, e))?;
        out.sync_all().await.map_err(|e| io_error(partial, e))?;
        Ok(())
    }
}

/// Where a download is written until it checked out: `<out>.part`.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    out.with_file_name(name)
}

/// An uploaded file, before its message.
struct Uploaded {
    server: parley_specs::ServerName,
    blob_id: String,
    key: FileKey,
    sha256: String,
    size: u64,
    chunk_size: u32,
}

impl Uploaded {
    fn into_attachment(
        self,
        name: String,
        media_type: &str,
        text: Option<&str>,
        expires_at: Option<OffsetDateTime>,
    ) -> FileAttachment {
        FileAttachment {
            server: self.server,
            blob_id: self.blob_id,
            key: URL_SAFE_NO_PAD.encode(self.key.0),
            sha256: self.sha256,
            size: self.size,
            chunk_size: self.chunk_size,
            media_type: media_type.to_owned(),
            name,
            text: text.filter(|t| !t.is_empty()).map(str::to_owned),
            expires_at,
        }
    }
}
