//! The messenger: one device's end-to-end encrypted conversations.
//!
//! A [`Messenger`] holds the device's MLS state (openmls) and its message history in one
//! store file sealed with the user's passphrase ([`crate::sealed`]: Argon2id,
//! XChaCha20-Poly1305, random salt; replaced atomically, mode 0600). Nothing secret or
//! private reaches the disk unencrypted. On top of the [`Client`] it:
//!
//! - publishes KeyPackages (and a last-resort one) at first use and tops them up;
//! - creates groups, adds and removes members by user id (every device of the user),
//!   catching up and retrying when another member committed first (`wrong_epoch`);
//! - sends text ([`Envelope`]), optionally disappearing, and receives over the inbox
//!   WebSocket with a long-poll fallback, acknowledging entries only once the state they
//!   produced is saved;
//! - keeps a searchable, exportable history in the hub's order, deleting expired
//!   messages, and deletes messages or whole conversations on request;
//! - joins, from a new device, the conversations its user is in (external commits);
//! - computes safety numbers and warns when a verified contact's devices change.
//!
//! Several processes may share one store: every operation locks it, re-reads it when
//! another process changed it, and writes it back before unlocking.
//!
//! ```no_run
//! # async fn demo(client: parley_sdk::Client, user: parley_sdk::specs::UserId,
//! #     device: parley_sdk::specs::DeviceId) -> Result<(), parley_sdk::messenger::MessengerError> {
//! use parley_sdk::messenger::Messenger;
//!
//! let mut messenger = Messenger::open(client, user, device, "alice.sealed", "a passphrase").await?;
//! let group = messenger.create_group().await?;
//! messenger.add_members(&group, &["bob@chat.example.org".parse()?]).await?;
//! messenger.send_text(&group, "hello", None).await?;
//! for event in messenger.receive(std::time::Duration::from_secs(20)).await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

mod commits;
mod contacts;
mod conversations;
mod device;
mod directory;
mod envelope;
mod error;
mod events;
mod files;
mod groups;
mod history;
mod join;
mod key_backup;
mod key_packages;
mod message_actions;
mod provider;
mod receive;
mod revocation;
mod roles;
mod safety;
mod send;
mod store;
mod transparency;

use std::path::{Path, PathBuf};
use std::time::Instant;

use parley_specs::{DeviceId, UserId};
use time::OffsetDateTime;

pub use directory::{DirectoryError, RefusedLeaf};
pub use envelope::{Envelope, FileAttachment, MAX_EMOJI_BYTES, Presence, check_emoji};
pub use error::MessengerError;
pub use events::{Event, LeafSource};
pub use files::{Progress, guess_media_type};
pub use groups::{AddOutcome, GroupOverview, LeaveOutcome, MemberDevice, RemoveOutcome};
pub use history::{ExportFormat, HistoryMessage, MAX_REACTIONS_PER_USER, history_text, human_time, text_line};
pub use key_packages::{KEY_PACKAGES_LOW_WATER, KEY_PACKAGES_TARGET};
pub use message_actions::SentAction;
pub use revocation::DeviceDeletion;
pub use roles::{GroupMeta, GroupSettings, MAX_NAME_CHARS, MAX_TIMER_SECS, MAX_TOPIC_CHARS};
pub use safety::{DeviceKey, SafetyNumber, Verification};
pub use send::{MAX_TEXT_BYTES, SentMessage};
pub use transparency::{DeviceAlert, PublishedDevices};

use self::device::DeviceIdentity;
use self::provider::DeviceProvider;
use self::store::{AppState, ReadOutcome, Store, StoreLock};
use crate::{Client, InboxStream};

/// Shortest passphrase accepted for a new store.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

type Result<T, E = MessengerError> = std::result::Result<T, E>;

/// One device's messenger. See the [module documentation](self).
pub struct Messenger {
    client: Client,
    store: Store,
    provider: DeviceProvider,
    identity: DeviceIdentity,
    state: AppState,
    /// The store generation `state` and `provider` hold.
    generation: u64,
    /// The in-memory state may be ahead of the store (an operation failed halfway):
    /// the next operation reloads it from the store.
    stale: bool,
    /// Whether this process checked the KeyPackage supply.
    online_checked: bool,
    /// A Welcome consumed one of this device's KeyPackages since the last top-up.
    key_packages_used: bool,
    /// Entries taken from the inbox and not processed yet (kept if `receive` is cancelled).
    received: Vec<parley_specs::groups_api::InboxEntry>,
    /// Inbox entries up to here were acknowledged by this process.
    acked_up_to: i64,
    /// The inbox WebSocket, while connected.
    stream: Option<InboxStream>,
    /// Whether `receive` may use the WebSocket (else it long-polls).
    websocket_enabled: bool,
    /// When to try the WebSocket again after it failed (long-polling meanwhile).
    websocket_retry_at: Option<Instant>,
    /// Events produced inside other operations (a catch-up before a retried commit),
    /// returned by the next `sync` or `receive`.
    undelivered: Vec<Event>,
    /// Device lists looked up by this process (see `directory.rs`).
    directory: directory::Directory,
    /// When this process last checked its account's key history (see `transparency.rs`).
    own_audit_at: Option<std::time::Instant>,
    /// Ratchet trees fetched from the hub for Welcomes without one, by inbox cursor.
    welcome_trees: std::collections::HashMap<i64, openmls::prelude::RatchetTreeIn>,
    /// The metadata key of the Welcome being joined (see `roles.rs`).
    welcome_key: Option<Vec<u8>>,
    /// The highest `missed.through` reported as [`Event::MissedMessages`] by this process.
    missed_reported: i64,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("user_id", &self.state.user_id)
            .field("device_id", &self.state.device_id)
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl Messenger {
    /// Opens the store at `store_path` with `passphrase`, or creates it (with a new MLS
    /// signature key for the device) when there is none. `client` must be logged in as
    /// `device` of `user`. Touches no network: KeyPackages are published by the first
    /// operation that talks to the homeserver.
    ///
    /// Fails with [`MessengerError::WrongPassphrase`] when the passphrase does not open
    /// the store, [`MessengerError::StoreOfAnotherDevice`] when the store was made by
    /// another device, [`MessengerError::WeakPassphrase`] for a new store with a passphrase
    /// shorter than [`MIN_PASSPHRASE_CHARS`].
    pub async fn open(
        client: Client,
        user: UserId,
        device: DeviceId,
        store_path: impl Into<PathBuf>,
        passphrase: &str,
    ) -> Result<Self> {
        let mut store = Store::new(store_path.into(), passphrase.as_bytes());
        let lock = store.lock().await?;
        let provider = DeviceProvider::default();
        match store.read(None)? {
            Some(ReadOutcome::Changed(loaded)) => {
                let loaded = *loaded;
                check_owner(store.path(), &loaded.app, &user, &device)?;
                provider.import(loaded.mls);
                let identity = DeviceIdentity::load(&provider, loaded.app.signature_key.as_slice(), &user, &device)?;
                Ok(Self::assemble(
                    client,
                    store,
                    provider,
                    identity,
                    loaded.app,
                    loaded.generation,
                ))
            }
            Some(ReadOutcome::Unchanged) => Err(MessengerError::store(store.path(), "unexpected store read")),
            None => {
                check_new_passphrase(passphrase)?;
                let signer = device::new_signer()?;
                Self::create(client, store, &lock, provider, signer, user, device)
            }
        }
    }

    /// Writes a new store for `device` of `user` with the signature key pair `signer`.
    fn create(
        client: Client,
        store: Store,
        lock: &StoreLock,
        provider: DeviceProvider,
        signer: openmls_basic_credential::SignatureKeyPair,
        user: UserId,
        device: DeviceId,
    ) -> Result<Self> {
        let identity = DeviceIdentity::with_stored_signer(&provider, signer, &user, &device)?;
        let state = AppState {
            signature_key: identity.signer.public().to_vec().into(),
            user_id: user,
            device_id: device,
            inbox_cursor: 0,
            conversations: Default::default(),
            contacts: Default::default(),
            leave_requests: Default::default(),
            pending_commits: Default::default(),
            server_keys: Default::default(),
            group_keys: Default::default(),
            announced_leaves: Default::default(),
            key_backup: None,
            restore: None,
            transparency: Default::default(),
        };
        let mut messenger = Self::assemble(client, store, provider, identity, state, 0);
        messenger.save(lock)?;
        Ok(messenger)
    }

    fn assemble(
        client: Client,
        store: Store,
        provider: DeviceProvider,
        identity: DeviceIdentity,
        state: AppState,
        generation: u64,
    ) -> Self {
        Self {
            client,
            store,
            provider,
            identity,
            state,
            generation,
            stale: false,
            online_checked: false,
            key_packages_used: false,
            received: Vec::new(),
            acked_up_to: 0,
            stream: None,
            websocket_enabled: true,
            websocket_retry_at: None,
            undelivered: Vec::new(),
            directory: Default::default(),
            own_audit_at: None,
            welcome_trees: Default::default(),
            welcome_key: None,
            missed_reported: 0,
        }
    }

    /// Whether a store exists at `path` (so that opening it will not create one).
    pub fn store_exists(path: &Path) -> bool {
        path.exists()
    }

    /// The account of this device.
    pub fn user_id(&self) -> &UserId {
        &self.state.user_id
    }

    /// This device.
    pub fn device_id(&self) -> &DeviceId {
        &self.state.device_id
    }

    /// The store file.
    pub fn store_path(&self) -> &Path {
        self.store.path()
    }

    /// The device's public signature key (Ed25519), as the group trees show it.
    pub fn signature_key(&self) -> &[u8] {
        self.identity.signer.public()
    }

    /// The homeserver client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The conversations this device is a member of.
    fn member_groups(&self) -> Vec<parley_specs::GroupId> {
        let conversations = self.state.conversations.iter();
        conversations
            .filter(|(_, c)| c.member)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Locks the store and brings the in-memory state up to date with it; deletes
    /// expired messages. Every operation starts here and ends with [`Self::end`].
    async fn begin(&mut self) -> Result<StoreLock> {
        let lock = self.store.lock().await?;
        let known = (!self.stale).then_some(self.generation);
        match self.store.read(known)? {
            Some(ReadOutcome::Unchanged) => {}
            Some(ReadOutcome::Changed(loaded)) => {
                let loaded = *loaded;
                check_owner(
                    self.store.path(),
                    &loaded.app,
                    &self.state.user_id,
                    &self.state.device_id,
                )?;
                self.provider.import(loaded.mls);
                self.state = loaded.app;
                self.generation = loaded.generation;
            }
            None => return Err(MessengerError::store(self.store.path(), "the store file disappeared")),
        }
        self.stale = true;
        let now = OffsetDateTime::now_utc();
        let mut expired = Vec::new();
        for (group_id, conversation) in &mut self.state.conversations {
            for seq in conversation.purge_expired(now) {
                expired.push(Event::Expired {
                    group_id: group_id.clone(),
                    seq,
                });
            }
        }
        if !expired.is_empty() {
            self.save(&lock)?;
            self.undelivered.extend(expired);
        }
        Ok(lock)
    }

    /// Ends an operation: on success the in-memory state is the store's; on failure it is
    /// reloaded by the next operation.
    fn end<T>(&mut self, lock: StoreLock, result: Result<T>) -> Result<T> {
        if result.is_ok() {
            self.stale = false;
        }
        drop(lock);
        result
    }

    /// Writes the state as the next generation.
    fn save(&mut self, lock: &StoreLock) -> Result<()> {
        let next = self.generation + 1;
        self.store.write(lock, next, &self.state, self.provider.export())?;
        self.generation = next;
        Ok(())
    }
}

fn check_new_passphrase(passphrase: &str) -> Result<()> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(MessengerError::WeakPassphrase(MIN_PASSPHRASE_CHARS));
    }
    Ok(())
}

/// A device about to be signed in, with the store it will have. Its MLS identity (the
/// signature key pair) is made before the homeserver is asked, so that the request
/// carries the public key and the server binds it to the device in the transaction that
/// creates it ([`crate::SignIn::register_with_messenger`]). [`NewDevice::create`] then
/// writes the store for the (user, device) the server answered.
pub struct NewDevice {
    store: Store,
    signer: openmls_basic_credential::SignatureKeyPair,
}

impl std::fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDevice")
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl NewDevice {
    /// A new identity, and the store to create at `store_path` sealed with `passphrase`
    /// (at least [`MIN_PASSPHRASE_CHARS`] characters).
    pub fn new(store_path: impl Into<PathBuf>, passphrase: &str) -> Result<Self> {
        let path = store_path.into();
        check_new_passphrase(passphrase)?;
        Ok(Self {
            store: Store::new(path, passphrase.as_bytes()),
            signer: device::new_signer()?,
        })
    }

    /// The device's MLS signature public key (Ed25519, 32 bytes), for the sign-in request.
    pub fn signature_key(&self) -> &[u8] {
        self.signer.public()
    }

    /// Creates the store for `device` of `user` (the device the homeserver created with
    /// [`NewDevice::signature_key`]; `client` logged in as it). A store already at the
    /// path belongs to an earlier device (a store belongs to one device): it is set aside
    /// ([`set_aside_store`]). Touches no network.
    pub async fn create(self, client: Client, user: UserId, device: DeviceId) -> Result<Messenger> {
        let lock = self.store.lock().await?;
        set_aside_store(self.store.path())?;
        Messenger::create(
            client,
            self.store,
            &lock,
            DeviceProvider::default(),
            self.signer,
            user,
            device,
        )
    }
}

/// Moves a store left by an earlier device of a profile out of the way (renamed beside
/// it with `.replaced-<unix time>`, never deleted: its history stays readable with its
/// passphrase); returns where it went, `None` when there was none.
pub fn set_aside_store(path: &Path) -> Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let seconds = OffsetDateTime::now_utc().unix_timestamp();
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".replaced-{seconds}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside)
        .map_err(|e| MessengerError::store(path, format!("cannot move it aside to {}: {e}", aside.display())))?;
    Ok(Some(aside))
}

fn check_owner(path: &Path, app: &AppState, user: &UserId, device: &DeviceId) -> Result<()> {
    if &app.user_id == user && &app.device_id == device {
        Ok(())
    } else {
        Err(MessengerError::StoreOfAnotherDevice {
            path: path.to_owned(),
            store_user: app.user_id.clone(),
            store_device: app.device_id.clone(),
            user: user.clone(),
            device: device.clone(),
        })
    }
}

/// A random transaction id for a submit.
fn new_txn_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}
