//! The one error type of the messenger.

use std::path::PathBuf;

use parley_specs::{DeviceId, ErrorCode, GroupId, UserId};

use crate::Error;

/// Everything a [`Messenger`](super::Messenger) operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessengerError {
    /// A call to the homeserver failed (refused, unreachable, ...).
    #[error(transparent)]
    Api(#[from] Error),
    /// An identifier (user, group) breaks its rules.
    #[error(transparent)]
    InvalidId(#[from] parley_specs::IdError),
    /// The store could not be decrypted: wrong passphrase, or the file was changed.
    #[error("cannot open the message store {}: wrong passphrase, or the file was changed", path.display())]
    WrongPassphrase {
        /// The store file.
        path: PathBuf,
    },
    /// The store cannot be read, written or understood.
    #[error("message store {}: {reason}", path.display())]
    Store {
        /// The store file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The store was made by another device than the one the client is logged in as.
    #[error(
        "the message store {} belongs to device {store_device} of {store_user}, but the session is device \
         {device} of {user}; move the file away to start a new store for this device",
        path.display()
    )]
    StoreOfAnotherDevice {
        /// The store file.
        path: PathBuf,
        /// The account that made the store.
        store_user: UserId,
        /// The device that made the store.
        store_device: DeviceId,
        /// The account of the session.
        user: UserId,
        /// The device of the session.
        device: DeviceId,
    },
    /// Another process kept the store locked for too long.
    #[error(
        "the message store {} is in use by another process (a `parley listen` of this profile?) and stayed \
         locked for {seconds} s",
        path.display()
    )]
    StoreBusy {
        /// The store file.
        path: PathBuf,
        /// How long we waited.
        seconds: u64,
    },
    /// A new store needs a longer passphrase.
    #[error("the passphrase is too short: use at least {0} characters")]
    WeakPassphrase(usize),
    /// No conversation with this id on this device.
    #[error("no conversation {0} on this device")]
    UnknownGroup(GroupId),
    /// The device was removed from the group (or left it).
    #[error("this device is no longer a member of {0}")]
    NotAMember(GroupId),
    /// The user has no device in the group.
    #[error("{user} has no device in {group}")]
    NotInGroup {
        /// The user.
        user: UserId,
        /// The group.
        group: GroupId,
    },
    /// None of the user's devices could be added.
    #[error("cannot add {user}: {reason}")]
    CannotAdd {
        /// The user.
        user: UserId,
        /// Why.
        reason: String,
    },
    /// A device cannot remove itself with a commit (MLS forbids it); leave instead.
    #[error("a device cannot remove itself from a group; leave the group instead")]
    CannotRemoveSelf,
    /// The MLS library refused an operation or a message.
    #[error("MLS: {0}")]
    Mls(String),
    /// Other members kept committing first.
    #[error("other members of {group} kept changing it; gave up after {attempts} attempts")]
    Contention {
        /// The group.
        group: GroupId,
        /// How many commits were tried.
        attempts: usize,
    },
    /// Safety numbers need a group shared with the contact.
    #[error("no conversation with {0} on this device: safety numbers come from the devices seen in a shared group")]
    NoSharedGroup(UserId),
    /// Safety numbers are between two different users.
    #[error("{0} is you: a safety number is between you and someone else")]
    OwnSafetyNumber(UserId),
    /// No message with this sequence number in the conversation's history.
    #[error("no message #{seq} in the history of {group}")]
    UnknownMessage {
        /// The group.
        group: GroupId,
        /// The sequence number.
        seq: i64,
    },
    /// Sending is blocked: verified contacts in the group have other devices than the ones
    /// verified. Compare safety numbers again and verify them, or accept the change.
    #[error(
        "not sent: the devices of {} changed since you verified them; compare your safety numbers again and \
         verify, or accept the change, before sending to this conversation",
        users.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")
    )]
    VerifiedContactChanged {
        /// The contacts whose devices changed.
        users: Vec<UserId>,
    },
    /// A user's device list could not be fetched to check leaves (the homeserver, or the
    /// user's server, is unreachable); nothing was refused or accepted, try again later.
    #[error("cannot check the devices of {user} in the device key directory now, try again later: {reason}")]
    DirectoryUnavailable {
        /// The user.
        user: UserId,
        /// Why.
        reason: String,
    },
    /// A user's device list was refused: badly signed, not proved by its server's key
    /// directory, or a split view (see [`DirectoryError`](super::DirectoryError)).
    #[error(transparent)]
    Directory(#[from] super::DirectoryError),
    /// This device refused a commit of the group (it carried a leaf the device key
    /// directory does not vouch for), so the conversation takes no further messages.
    #[error(
        "{group} is closed on this device: it refused a change that put a device the directory does not vouch          for in the group ({reason}); leave it and start a new conversation"
    )]
    ConversationRefused {
        /// The group.
        group: GroupId,
        /// Why the commit was refused.
        reason: String,
    },
    /// Only the user who sent a message may edit it or delete it for everyone.
    #[error("#{seq} in {group} was sent by {sender}: only its sender may {action}")]
    NotYourMessage {
        /// The group.
        group: GroupId,
        /// The message.
        seq: i64,
        /// Who sent it.
        sender: UserId,
        /// `edit it` or `delete it for everyone`.
        action: &'static str,
    },
    /// A reaction breaks the rules (empty, too long, spaces or control characters, too
    /// many on one message).
    #[error("invalid reaction: {0}")]
    InvalidReaction(String),
    /// A local file could not be read or written.
    #[error("{}: {reason}", path.display())]
    FileIo {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The message has no file attached.
    #[error("message #{seq} of {group} has no file")]
    NoFile {
        /// The group.
        group: GroupId,
        /// The message.
        seq: i64,
    },
    /// A downloaded file was refused (code `file_hash_mismatch`): its ciphertext does not
    /// match the hash or length its message carries, or a chunk does not decrypt. Nothing
    /// was written where the file was to go.
    #[error("the downloaded file was refused: {0}")]
    FileRefused(String),
    /// The key backup or a restore failed (wrong key, altered chunk, ...).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The text is longer than a message may carry.
    #[error("the message is {len} bytes; at most {max} fit in one message")]
    TextTooLong {
        /// The text's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The group was made without roles (no group policy): it has no name, topic or
    /// admins to change.
    #[error("{0} was made without roles: it has no name, topic or admins to change")]
    NoRoles(GroupId),
    /// Demoting the last admin would leave the group without one.
    #[error("the last admin of {0} cannot be demoted (promote someone else first, or leave: the role passes on)")]
    LastAdmin(GroupId),
    /// Input outside its rules (a group name, a topic).
    #[error("{0}")]
    InvalidInput(String),
}

impl MessengerError {
    /// The API error code, when the homeserver refused a request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api(e) => e.code(),
            Self::FileRefused(_) => Some(ErrorCode::FileHashMismatch),
            _ => None,
        }
    }

    pub(crate) fn store(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        Self::Store {
            path: path.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Maps an MLS library error to [`MessengerError::Mls`], saying what was being done.
pub(crate) fn mls<E: std::fmt::Display>(doing: &'static str) -> impl FnOnce(E) -> MessengerError {
    move |e| MessengerError::Mls(format!("{doing}: {e}"))
}
