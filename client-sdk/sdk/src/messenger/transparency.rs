//! Key transparency on the device (see `protocol.md`, "Key transparency").
//!
//! - **Contacts**: every device list used to check leaves comes with a lookup proof of
//!   the user in their server's key directory and the signed root it verifies against.
//!   Only devices that are both in the signed list and in the published value are
//!   trusted; a root older than one seen before from the same server, a root that differs
//!   from the one this device's own server audited for that epoch (a split view), or a
//!   proof that does not verify refuses the whole list.
//! - **This account**: on each sync the device checks the key-history proof of its own
//!   account from the first version it has not verified, and every device that appears
//!   in a version and that this device never knew of raises an alert
//!   ([`Event::UnknownOwnDevice`](super::Event::UnknownOwnDevice)), kept until the user
//!   accepts it (`parley devices audit --accept`).

use std::collections::{BTreeMap, BTreeSet};

use parley_federation::key_document::VerifiedKeys;
use parley_federation::transparency_root::{self, VerifiedRoot};
use parley_specs::keys_api::UserDeviceKeys;
use parley_specs::transparency_api::{SignedRoot, TransparencyLookup};
use parley_specs::{DeviceId, ErrorCode, ServerName, UserId};
use serde::{Deserialize, Serialize};

use super::StoreLock;
use super::directory::DirectoryError;
use super::events::Event;
use super::{Messenger, Result};

/// What this device keeps of key transparency.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TransparencyState {
    /// The newest root of each server's directory this device checked a proof against.
    #[serde(default)]
    pub(crate) server_roots: BTreeMap<ServerName, SeenRoot>,
    /// Versions of this account's device list up to this one are checked.
    #[serde(default)]
    pub(crate) own_version: u64,
    /// The devices of this account this device knows of.
    #[serde(default)]
    pub(crate) known_devices: BTreeSet<DeviceId>,
    /// Devices of this account that appeared without this device knowing.
    #[serde(default)]
    pub(crate) alerts: Vec<DeviceAlert>,
}

/// A root this device saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SeenRoot {
    pub(crate) epoch: u64,
    pub(crate) published_at_ms: i64,
}

/// A root this much older than the newest one seen of its server is refused: the log went
/// backwards. Younger ones are accepted, for servers cache other servers' lists (with
/// their proofs) for up to five minutes, and each process has its own cache.
const MAX_ROOT_LAG_MS: i64 = 15 * 60_000;

/// A device of this account that appeared in its server's key directory without this
/// device knowing of it: a device the user logged in elsewhere, or one the server added
/// behind their back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAlert {
    pub device_id: DeviceId,
    /// The epoch of the server's key directory it was published in.
    pub epoch: u64,
    /// When that epoch was published (Unix milliseconds), as the server signed it.
    pub published_at_ms: Option<i64>,
    /// The user said it is theirs.
    pub accepted: bool,
}

/// A device list after its transparency check.
pub(crate) struct Transparent {
    /// The devices both signed and published.
    pub(crate) list: UserDeviceKeys,
    /// Signed devices not published yet (a new device, until the next epoch).
    pub(crate) unpublished: usize,
    /// The epoch the user's current published devices were published in (none: the
    /// list is not from a key directory, or the user was never published).
    pub(crate) since_epoch: Option<u64>,
}

/// A user's devices as their server's key directory publishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedDevices {
    pub user: UserId,
    /// The devices both signed by the user's server and published, with their keys.
    pub devices: Vec<parley_specs::keys_api::DeviceKey>,
    /// The epoch these devices were published in ("transparent since epoch N"); none
    /// when the user's server keeps no key directory.
    pub since_epoch: Option<u64>,
}

impl Messenger {
    /// Checks a signed list's lookup proof (`server_keys` are the keys the list's
    /// signature was checked with, the ones pinned for the server).
    pub(crate) fn check_transparency(
        &mut self,
        user: &UserId,
        server_keys: &VerifiedKeys,
        list: UserDeviceKeys,
        lookup: Option<TransparencyLookup>,
    ) -> std::result::Result<Transparent, DirectoryError> {
        let bad = |reason: String| DirectoryError::NotTransparent {
            user: user.clone(),
            reason,
        };
        let Some(lookup) = lookup else {
            // Never published: none of its devices had a key yet.
            let unpublished = list.devices.len();
            return Ok(Transparent {
                list: UserDeviceKeys {
                    user_id: list.user_id,
                    devices: Vec::new(),
                },
                unpublished,
                since_epoch: None,
            });
        };
        let root = self.checked_root(user, server_keys, lookup.root).map_err(&bad)?;
        if let Some(witnessed) = lookup.witnessed
            && witnessed.root != root.signed().root
        {
            return Err(DirectoryError::SplitView {
                server: user.server_name(),
                epoch: root.epoch(),
            });
        }
        let published = parley_transparency::verify_lookup(root.root(), user, lookup.proof.as_slice())
            .map_err(|e| bad(e.to_string()))?;
        let published_keys: BTreeMap<&DeviceId, &[u8]> = published
            .devices
            .iter()
            .map(|d| (&d.device_id, d.signature_key.as_slice()))
            .collect();
        let (devices, unpublished): (Vec<_>, Vec<_>) = list
            .devices
            .into_iter()
            .partition(|d| published_keys.get(&d.device_id) == Some(&d.signature_key.as_slice()));
        self.saw_root(&root);
        Ok(Transparent {
            list: UserDeviceKeys {
                user_id: list.user_id,
                devices,
            },
            unpublished: unpublished.len(),
            since_epoch: Some(published.epoch),
        })
    }

    /// A root of `user`'s server: signed by it, and not older than one seen before.
    fn checked_root(
        &self,
        user: &UserId,
        server_keys: &VerifiedKeys,
        root: SignedRoot,
    ) -> std::result::Result<VerifiedRoot, String> {
        let server = user.server_name();
        if root.root.server != server {
            return Err(format!("the proof is against a root of {}", root.root.server));
        }
        let root = transparency_root::verify(root, server_keys).map_err(|e| e.to_string())?;
        if let Some(seen) = self.state.transparency.server_roots.get(&server)
            && root.epoch() < seen.epoch
            && (root.root().published_at_ms < seen.published_at_ms - MAX_ROOT_LAG_MS
                || root.root().published_at_ms > seen.published_at_ms)
        {
            return Err(format!(
                "its root is of epoch {}, but this device saw epoch {} of {server} before (the log went backwards)",
                root.epoch(),
                seen.epoch
            ));
        }
        Ok(root)
    }

    /// Remembers `root` when it is the newest of its server this device saw.
    fn saw_root(&mut self, root: &VerifiedRoot) {
        let seen = SeenRoot {
            epoch: root.epoch(),
            published_at_ms: root.root().published_at_ms,
        };
        let newest = self
            .state
            .transparency
            .server_roots
            .entry(root.root().server.clone())
            .or_insert(seen);
        if seen.epoch > newest.epoch {
            *newest = seen;
        }
    }

    /// `user`'s devices as their server publishes them now (fetched, checked, waiting for
    /// devices not published yet as for adding them), with the epoch they were published
    /// in: a device a contact's server added shows with a newer epoch.
    pub async fn published_devices(&mut self, user: &UserId) -> Result<PublishedDevices> {
        let lock = self.begin().await?;
        let result = self.fetch_device_list(user).await.and_then(|checked| {
            let checked = checked.map_err(super::error::MessengerError::Directory)?;
            Ok(PublishedDevices {
                user: user.clone(),
                devices: checked.list.devices,
                since_epoch: checked.since_epoch,
            })
        });
        let result = match result {
            Ok(published) => self.save(&lock).map(|()| published),
            Err(e) => Err(e),
        };
        self.end(lock, result)
    }

    /// Alerts about this account's devices, the accepted ones included.
    pub fn device_alerts(&self) -> Vec<DeviceAlert> {
        self.state.transparency.alerts.clone()
    }

    /// Marks the alert about `device` as accepted (the user says it is theirs); returns
    /// whether there was one.
    pub async fn accept_device_alert(&mut self, device: &DeviceId) -> Result<bool> {
        let lock = self.begin().await?;
        let mut found = false;
        for alert in &mut self.state.transparency.alerts {
            if alert.device_id == *device {
                alert.accepted = true;
                found = true;
            }
        }
        let result = if found {
            self.save(&lock).map(|()| true)
        } else {
            Ok(false)
        };
        self.end(lock, result)
    }

    /// Checks the key history of this account since the last check and adds an alert
    /// (and an event) for each device this device did not know of. A proof that does not
    /// verify is reported as [`Event::TransparencyFailed`](super::Event::TransparencyFailed);
    /// a server without a key directory or out of reach is skipped (next sync).
    pub async fn audit_own_devices(&mut self) -> Result<Vec<DeviceAlert>> {
        let lock = self.begin().await?;
        let result = self.audit_own_devices_locked(&lock).await;
        let alerts = self.end(lock, result)?;
        Ok(alerts)
    }

    pub(crate) async fn audit_own_devices_locked(&mut self, lock: &StoreLock) -> Result<Vec<DeviceAlert>> {
        self.own_audit_at = Some(std::time::Instant::now());
        let own = self.state.user_id.clone();
        let server = own.server_name();
        let answer = match self
            .client
            .transparency_history(self.state.transparency.own_version + 1)
            .await
        {
            Ok(answer) => answer,
            Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(Vec::new()),
            // Out of reach now: the next sync checks.
            Err(_) => return Ok(Vec::new()),
        };
        let failed = |this: &mut Self, reason: String| {
            this.undelivered.push(Event::TransparencyFailed {
                server: server.clone(),
                reason,
            });
            Ok(Vec::new())
        };
        let Some(proof) = answer.proof else {
            return Ok(Vec::new());
        };
        let keys = match self.pinned_server_keys(&server, answer.server_key) {
            Ok(keys) => keys,
            Err(e) => return failed(self, e.to_string()),
        };
        let root = match self.checked_root(&own, &keys, answer.root) {
            Ok(root) => root,
            Err(reason) => return failed(self, reason),
        };
        let versions = match parley_transparency::verify_history(root.root(), &own, proof.as_slice(), answer.versions) {
            Ok(versions) => versions,
            Err(e) => return failed(self, format!("the key history of {own} does not verify: {e}")),
        };
        // The versions follow the last one checked, with no gap: a version left out could
        // hide a device (the server answers the most recent ones only).
        let checked_up_to = self.state.transparency.own_version;
        let known_self = self.state.transparency.known_devices.contains(&self.state.device_id);
        if let (Some(first), Some(last)) = (versions.first(), versions.last()) {
            let contiguous = versions.windows(2).all(|w| w[1].version == w[0].version + 1);
            if !contiguous || last.version < checked_up_to || (known_self && first.version > checked_up_to + 1) {
                return failed(
                    self,
                    format!(
                        "the key history of {own} shows versions {} to {} after this device checked up to version {checked_up_to}: versions are missing",
                        first.version, last.version
                    ),
                );
            }
        }
        let times: BTreeMap<u64, i64> = answer
            .update_roots
            .into_iter()
            .filter_map(|r| transparency_root::verify(r, &keys).ok())
            .map(|r| (r.epoch(), r.root().published_at_ms))
            .collect();
        self.saw_root(&root);
        let state = &mut self.state.transparency;
        let me = self.state.device_id.clone();
        let mut new_alerts = Vec::new();
        for version in versions.into_iter().filter(|v| v.version > checked_up_to) {
            let ids: BTreeSet<DeviceId> = version.devices.into_iter().map(|d| d.device_id).collect();
            if !state.known_devices.contains(&me) {
                // Before this device is published, what the account had is its baseline.
                if ids.contains(&me) {
                    state.known_devices.extend(ids);
                }
                state.own_version = version.version;
                continue;
            }
            for device in ids {
                if state.known_devices.insert(device.clone()) {
                    let alert = DeviceAlert {
                        device_id: device,
                        epoch: version.epoch,
                        published_at_ms: times.get(&version.epoch).copied(),
                        accepted: false,
                    };
                    new_alerts.push(alert.clone());
                    state.alerts.push(alert);
                }
            }
            state.own_version = version.version;
        }
        if !state.known_devices.contains(&me) {
            // This device is not published yet: check from the start again next time.
            state.own_version = 0;
        }
        for alert in &new_alerts {
            self.undelivered.push(Event::UnknownOwnDevice { alert: alert.clone() });
        }
        self.save(lock)?;
        Ok(new_alerts)
    }
}
