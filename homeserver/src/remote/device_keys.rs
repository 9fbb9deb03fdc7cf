//! Other servers' users in the device key directory: their signed device lists, fetched
//! from the users' own servers (`GET /federation/v1/users/{user_id}/devices`), verified
//! with those servers' published keys and cached; and this server's signature on the
//! lists of its own users.
//!
//! A device's key never changes once its server bound it, so a cached list that names a
//! device with a key is a good answer for that device; what a cached list cannot say is
//! whether a device it lacks exists by now, whether a listed device was deleted since,
//! or anything after `MAX_AGE`. Callers that find a device or key the cached copy does
//! not vouch for fetch the list again (once per request, see `hub::vouch`), never while
//! holding a group's lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parley_federation::KeyId;
use parley_federation::device_keys::{self as signing, VerifiedDeviceKeys};
use parley_federation::server_key::encode_public_key;
use parley_specs::endpoints::federation::USER_DEVICES;
use parley_specs::keys_api::{ServerVerifyKey, SignedDeviceKeys, UserDeviceKeys};
use parley_specs::{DeviceId, UserId};

use super::{MAX_SMALL_ANSWER_BYTES, Remote, now_ms, peer_keys, refused, unavailable};
use crate::error::ApiError;

/// A cached list vouches for its devices this long; after that it is fetched again
/// before it is relied on, so a deleted device stops being vouched for within it.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Lists of at most this many users are kept; beyond it the oldest half is dropped.
const MAX_CACHED_USERS: usize = 10_000;

/// Verified device lists of other servers' users.
#[derive(Default)]
pub struct DeviceKeyCache {
    cache: Mutex<HashMap<UserId, Cached>>,
}

#[derive(Clone)]
struct Cached {
    keys: VerifiedDeviceKeys,
    fetched_at: Instant,
    /// Every device of the list is in the lookup proof it came with: a list naming a
    /// device not published yet is fetched again soon, for clients wait for it.
    published: bool,
}

/// A list naming devices not yet published in its server's key directory is relied on
/// this long (its server publishes within seconds).
const UNPUBLISHED_MAX_AGE: Duration = Duration::from_millis(500);

impl DeviceKeyCache {
    /// The cached list of `user` if it was fetched less than `max_age` ago.
    pub fn fresh(&self, user: &UserId, max_age: Duration) -> Option<VerifiedDeviceKeys> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(user)
            .filter(|c| c.fetched_at.elapsed() < max_age)
            .map(|c| c.keys.clone())
    }

    /// As `fresh`, but a list with devices not published yet only for a moment.
    fn fresh_published(&self, user: &UserId, max_age: Duration) -> Option<VerifiedDeviceKeys> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(user)
            .filter(|c| {
                c.fetched_at.elapsed()
                    < if c.published {
                        max_age
                    } else {
                        max_age.min(UNPUBLISHED_MAX_AGE)
                    }
            })
            .map(|c| c.keys.clone())
    }

    /// Whether a list of `user` fetched less than `MAX_AGE` ago names `device` with
    /// exactly `key`. False says nothing: the list may be older, or lack a new device.
    pub fn vouches(&self, user: &UserId, device: &DeviceId, key: &[u8]) -> bool {
        self.fresh(user, MAX_AGE)
            .is_some_and(|list| list.device_keys().key_of(device) == Some(key))
    }

    fn store(&self, keys: VerifiedDeviceKeys) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_USERS {
            let mut ages: Vec<_> = cache.values().map(|c| c.fetched_at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            cache.retain(|_, c| c.fetched_at > cutoff);
        }
        let published = all_published(keys.signed());
        cache.insert(
            keys.device_keys().user_id.clone(),
            Cached {
                keys,
                fetched_at: Instant::now(),
                published,
            },
        );
    }
}

/// Whether every device of the list is in the lookup proof it came with (the proof is
/// checked by whoever relies on it; this only decides how long the list is cached).
fn all_published(signed: &SignedDeviceKeys) -> bool {
    let Some(lookup) = &signed.transparency else {
        return signed.device_keys.devices.is_empty();
    };
    let Ok(published) =
        parley_transparency::verify_lookup(&lookup.root.root, &signed.device_keys.user_id, lookup.proof.as_slice())
    else {
        return false;
    };
    signed
        .device_keys
        .devices
        .iter()
        .all(|d| published.devices.iter().any(|p| p == d))
}

/// `user`'s list from the cache when fetched less than `max_age` ago, else from their
/// server (see `fetch`).
pub async fn of_user(remote: &Remote, user: &UserId, max_age: Duration) -> Result<VerifiedDeviceKeys, ApiError> {
    match remote.device_keys.fresh_published(user, max_age) {
        Some(keys) => Ok(keys),
        None => fetch(remote, user).await,
    }
}

/// Fetches the list of `user`, a user of another server, from that server, checks its
/// signature with the server's published keys, and caches it. `not_found` when the
/// server has no such user; `remote_unavailable` when it cannot be reached or answers
/// anything but a list of that user it signed; `server_not_allowed` for a server this
/// one does not federate with.
pub async fn fetch(remote: &Remote, user: &UserId) -> Result<VerifiedDeviceKeys, ApiError> {
    let server = user.server_name();
    if server == remote.server_name {
        return Err(ApiError::internal(
            "fetching device keys",
            format!("{user} is a user of this server"),
        ));
    }
    let path = USER_DEVICES.path_with(&[user.as_str()]);
    let (status, bytes) = remote
        .call(reqwest::Method::GET, &server, &path, Vec::new(), MAX_SMALL_ANSWER_BYTES)
        .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(&format!("user {user}")));
    }
    if !status.is_success() {
        return Err(refused(&server, &format!("the device list of {user}"), status, &bytes));
    }
    let signed: SignedDeviceKeys = serde_json::from_slice(&bytes).map_err(|e| {
        unavailable(format!(
            "{server} answered for the devices of {user} with something else: {e}"
        ))
    })?;
    if signed.device_keys.user_id != *user {
        return Err(unavailable(format!(
            "{server} answered with the devices of {} instead of {user}",
            signed.device_keys.user_id
        )));
    }
    let key_id = KeyId::parse(&signed.server_signature.key_id).map_err(|e| {
        unavailable(format!(
            "{server} signed the devices of {user} with a malformed key id: {e}"
        ))
    })?;
    let server_keys = peer_keys::with_key(remote, &server, &key_id, signed.server_signature.signed_at_ms)
        .await
        .map_err(|e| unavailable(format!("cannot check the device list of {user}: {}", e.message)))?;
    let verified = signing::verify(signed, &server_keys).map_err(|e| {
        unavailable(format!(
            "{server} answered with a device list that does not verify: {e}"
        ))
    })?;
    remote.device_keys.store(verified.clone());
    tracing::debug!(%user, devices = verified.device_keys().devices.len(), "device list fetched");
    Ok(verified)
}

/// The list of one of this server's users, signed with this server's current key.
pub fn signed(remote: &Remote, device_keys: UserDeviceKeys) -> SignedDeviceKeys {
    signing::sign(&remote.keys.current(), device_keys, now_ms())
}

/// The list of one of this server's users, signed with this server's current key, and
/// that key's public half (for a client, which cannot fetch the key document).
pub fn signed_with_key(remote: &Remote, device_keys: UserDeviceKeys) -> (SignedDeviceKeys, ServerVerifyKey) {
    let keyring = remote.keys.current();
    (signing::sign(&keyring, device_keys, now_ms()), verify_key(&keyring))
}

/// This server's current federation public key, as relayed to clients.
pub fn current_verify_key(remote: &Remote) -> ServerVerifyKey {
    verify_key(&remote.keys.current())
}

fn verify_key(keyring: &parley_federation::ServerKeyring) -> ServerVerifyKey {
    ServerVerifyKey {
        key_id: keyring.key_id().as_str().to_owned(),
        key: encode_public_key(&keyring.public_key()),
    }
}

/// The public key of the server that signed `verified` (a list already checked with
/// it), from the cached key document of that server.
pub async fn signing_key(remote: &Remote, verified: &VerifiedDeviceKeys) -> Result<ServerVerifyKey, ApiError> {
    let signature = &verified.signed().server_signature;
    let server = verified.device_keys().user_id.server_name();
    let key_id = KeyId::parse(&signature.key_id)
        .map_err(|e| unavailable(format!("{server} signed a device list with a malformed key id: {e}")))?;
    let keys = peer_keys::with_key(remote, &server, &key_id, signature.signed_at_ms).await?;
    let key = keys.key_for(&key_id, signature.signed_at_ms).ok_or_else(|| {
        unavailable(format!(
            "{server} no longer publishes the key {key_id} of a device list"
        ))
    })?;
    Ok(ServerVerifyKey {
        key_id: key_id.as_str().to_owned(),
        key: encode_public_key(key),
    })
}
