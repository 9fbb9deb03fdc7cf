//! The devices of this server's users: which device an access token belongs to, what a
//! user may do with their own devices (list, rename, revoke), and the device key
//! directory: the MLS signature key bound to each device, served to clients and, signed
//! by this server, to other servers.
//!
//! A device's key is bound when the device is created, when register or login carries
//! it (`accounts`), else at its first use of a key here (its first KeyPackage upload, or
//! the first group it creates), and never changes: this server vouches for exactly one
//! key per device, which is what lets the hub and other servers tell a device's real
//! leaves from leaves a group member made up in its name.

use std::time::Duration;

use parley_specs::client_api::DeviceInfo;
use parley_specs::groups_api::GroupMember;
use parley_specs::keys_api::{DeviceKey, SignedDeviceKeys, UserDeviceKeys, UserDevices};
use parley_specs::transparency_api::TransparencyLookup;
use parley_specs::{DeviceId, ErrorCode, Localpart, UserId};
use subtle::ConstantTimeEq;

use crate::accounts::checked_device_name;
use crate::credentials::token_hash;
use crate::error::ApiError;
use crate::remote::{self, Remote};
use crate::state::AppState;
use crate::store::{self, Db, devices::DeviceRow};

/// A device of a user of this server, as an access token identifies it.
#[derive(Debug, Clone)]
pub struct Device {
    pub localpart: Localpart,
    pub user_id: UserId,
    pub device_id: DeviceId,
}

impl Device {
    /// This device as a group member.
    pub fn member(&self) -> GroupMember {
        GroupMember {
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

/// The device `token` was issued to; `unknown_token` when it was never issued or was
/// revoked.
pub async fn by_access_token(state: &AppState, token: &str) -> Result<Device, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownToken,
            "the access token is unknown or was revoked; log in again",
        )
    };
    let hash = token_hash(token);
    let db = state.pool.get().await?;
    let owner = store::devices::by_token_hash(&db, &hash).await?.ok_or_else(unknown)?;
    // The lookup is by hash; this comparison keeps the accept path constant-time too.
    if !bool::from(owner.token_hash.as_slice().ct_eq(&hash)) {
        return Err(unknown());
    }
    let localpart = Localpart::parse(&owner.localpart).map_err(|e| ApiError::internal("stored localpart", e))?;
    let device_id = DeviceId::parse(&owner.device_id).map_err(|e| ApiError::internal("stored device id", e))?;
    if owner.seen_stale {
        store::devices::touch(&db, &device_id).await?;
    }
    Ok(Device {
        user_id: UserId::new(&localpart, &state.config.server_name),
        localpart,
        device_id,
    })
}

pub async fn list(state: &AppState, who: &Device) -> Result<Vec<DeviceInfo>, ApiError> {
    let rows = store::devices::list(&state.pool.get().await?, &who.localpart).await?;
    rows.into_iter().map(|row| info(row, who)).collect()
}

pub async fn rename(state: &AppState, who: &Device, device_id: &DeviceId, name: &str) -> Result<DeviceInfo, ApiError> {
    let name = checked_device_name(name)?;
    let row = store::devices::rename(&state.pool.get().await?, &who.localpart, device_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    info(row, who)
}

/// Revokes one of the user's devices (its token stops working at once).
pub async fn delete(state: &AppState, who: &Device, device_id: &DeviceId) -> Result<(), ApiError> {
    if revoke(state, &who.localpart, Revoke::One(device_id)).await?.is_empty() {
        return Err(ApiError::not_found("device"));
    }
    Ok(())
}

/// Revokes the device making the request.
pub async fn log_out(state: &AppState, who: &Device) -> Result<(), ApiError> {
    revoke(state, &who.localpart, Revoke::One(&who.device_id)).await?;
    Ok(())
}

/// Revokes every device of the user, the one making the request included.
pub async fn log_out_everywhere(state: &AppState, who: &Device) -> Result<(), ApiError> {
    revoke(state, &who.localpart, Revoke::AllExcept(None)).await?;
    Ok(())
}

// Revocation. Every way a device goes (deleted by its owner, logged out, a password
// change or reset, an administrator) goes through `revoke_in` and then `close_readers`:
// the device and its token are deleted, the groups hubbed here where it has a leaf are
// marked so the hub takes nothing more for an epoch it can read (`hub::revoked`), and its
// open inbox readers, here and on the domain's other processes, are closed at once.

/// Which devices of an account to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke<'a> {
    One(&'a DeviceId),
    /// Every device but this one (every device when `None`).
    AllExcept(Option<&'a DeviceId>),
}

/// Revokes devices of `localpart` inside the caller's transaction `db`: marks the groups
/// hubbed here in which they have a leaf (locking those groups first, as every writer
/// locks groups before devices), then deletes them. Returns the deleted devices; once the
/// transaction is committed the caller passes them to [`close_readers`].
pub async fn revoke_in(
    db: &impl Db,
    state: &AppState,
    localpart: &Localpart,
    which: Revoke<'_>,
) -> Result<Vec<String>, ApiError> {
    let user = UserId::new(localpart, &state.config.server_name);
    let doomed: Vec<String> = match which {
        Revoke::One(device) => vec![device.as_str().to_owned()],
        Revoke::AllExcept(keep) => store::devices::ids_except(db, localpart, keep).await?,
    };
    let doomed_refs: Vec<&str> = doomed.iter().map(String::as_str).collect();
    let marked = store::groups::mark_revoked(db, &user, &doomed_refs).await?;
    // The very devices the groups were marked for, whatever logs in meanwhile.
    let deleted = store::devices::delete_many(db, localpart, &doomed_refs).await?;
    if !deleted.is_empty() {
        tracing::info!(user = %user, devices = ?deleted, marked_groups = marked, "devices revoked");
    }
    Ok(deleted)
}

/// After the revoking transaction committed: ends the revoked devices' inbox WebSockets
/// and long-polls, on this process and (through the wake-up relay) on the others.
pub fn close_readers(state: &AppState, revoked: &[String]) {
    state.inbox_waker.revoke(revoked);
}

/// Revokes devices in a transaction of its own, and closes their readers.
pub async fn revoke(state: &AppState, localpart: &Localpart, which: Revoke<'_>) -> Result<Vec<String>, ApiError> {
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let revoked = revoke_in(&tx, state, localpart, which).await?;
    tx.commit().await?;
    close_readers(state, &revoked);
    Ok(revoked)
}

fn info(row: DeviceRow, who: &Device) -> Result<DeviceInfo, ApiError> {
    let device_id = DeviceId::parse(&row.device_id).map_err(|e| ApiError::internal("stored device id", e))?;
    Ok(DeviceInfo {
        current: device_id == who.device_id,
        device_id,
        display_name: row.display_name,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
    })
}

// The device key directory.

/// Binds `key` to `device` if it has no key yet, else checks that it is the device's key
/// (`signature_key_mismatch`). Takes the device's row lock for the rest of the
/// transaction, so concurrent first uses bind one key. `what` names the MLS data that
/// carries the key, for the message.
pub async fn bind_signature_key(db: &impl Db, device: &DeviceId, key: &[u8], what: &str) -> Result<(), ApiError> {
    match store::devices::signature_key_for_update(db, device).await? {
        // Revoked while the request ran.
        None => Err(ApiError::new(
            ErrorCode::UnknownToken,
            "the device was revoked; log in again",
        )),
        Some(None) => {
            if key.len() != parley_specs::keys_api::SIGNATURE_KEY_LEN {
                return Err(ApiError::new(
                    ErrorCode::SignatureKeyMismatch,
                    format!(
                        "{what} carries a {}-byte signature key; a device's key is an Ed25519 key",
                        key.len()
                    ),
                ));
            }
            store::devices::bind_signature_key(db, device, key).await?;
            tracing::info!(device = %device, "device signature key bound");
            Ok(())
        }
        Some(Some(bound)) if bound == key => Ok(()),
        Some(Some(_)) => Err(ApiError::new(
            ErrorCode::SignatureKeyMismatch,
            format!(
                "{what} carries another signature key than the one bound to device {device}; a device's key never changes (a new key needs a new device: log in again)"
            ),
        )),
    }
}

/// The directory entry of `user`, a user of this server, from the store.
async fn local_device_keys(state: &AppState, user: &UserId) -> Result<UserDeviceKeys, ApiError> {
    let localpart = user.localpart();
    let db = state.pool.get().await?;
    if !store::accounts::exists(&db, &localpart).await? {
        return Err(ApiError::not_found(&format!("user {user}")));
    }
    let devices = store::devices::signature_keys(&db, &localpart)
        .await?
        .into_iter()
        .map(|(device_id, key)| {
            Ok(DeviceKey {
                device_id: DeviceId::parse(&device_id).map_err(|e| ApiError::internal("stored device id", e))?,
                signature_key: key.into(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(UserDeviceKeys {
        user_id: user.clone(),
        devices,
    })
}

/// A list fetched from another server this recently answers clients without asking
/// again, so that clients cannot make this server flood another one.
const CLIENT_LIST_MAX_AGE: Duration = Duration::from_secs(10);

/// `GET /client/v1/users/{user_id}/devices`: `user`'s devices with their keys, from the
/// store for a user of this server (signed by this server when it federates), from the
/// user's server otherwise (with that server's signature); with the public key that
/// signed, which clients pin.
pub async fn user_devices(state: &AppState, user: UserId) -> Result<UserDevices, ApiError> {
    if user.server_name() == state.config.server_name {
        let device_keys = local_device_keys(state, &user).await?;
        let Some(remote) = state.remote.as_deref() else {
            return Ok(UserDevices {
                device_keys,
                server_signature: None,
                server_key: None,
                transparency: None,
            });
        };
        let transparency = lookup(state, &user).await?;
        let (signed, key) = remote::device_keys::signed_with_key(remote, device_keys);
        return Ok(UserDevices {
            device_keys: signed.device_keys,
            server_signature: Some(signed.server_signature),
            server_key: Some(key),
            transparency,
        });
    }
    let Some(remote) = state.remote.as_deref() else {
        return Err(ApiError::not_found(&format!(
            "user {user} (this server does not federate with other servers)"
        )));
    };
    let verified = remote::device_keys::of_user(remote, &user, CLIENT_LIST_MAX_AGE).await?;
    let key = remote::device_keys::signing_key(remote, &verified).await?;
    let signed = verified.into_signed();
    // The root the list was proved against, next to the one this server audited for
    // that epoch: the client compares them (a split view shows as two roots).
    let transparency = match (signed.transparency, state.transparency.as_deref()) {
        (Some(mut lookup), Some(transparency)) => {
            lookup.witnessed = Some(transparency.witness(&user.server_name(), &lookup).await?);
            Some(lookup)
        }
        (lookup, _) => lookup,
    };
    Ok(UserDevices {
        device_keys: signed.device_keys,
        server_signature: Some(signed.server_signature),
        server_key: Some(key),
        transparency,
    })
}

/// The lookup proof of `user`, a user of this server, when this server keeps a key directory.
async fn lookup(state: &AppState, user: &UserId) -> Result<Option<TransparencyLookup>, ApiError> {
    match state.transparency.as_deref() {
        Some(transparency) => transparency.lookup(user).await,
        None => Ok(None),
    }
}

/// `GET /federation/v1/users/{user_id}/devices`: the directory entry of a user of this
/// server, signed by this server. A server vouches only for its own users' devices.
pub async fn signed_device_keys(state: &AppState, remote: &Remote, user: UserId) -> Result<SignedDeviceKeys, ApiError> {
    if user.server_name() != state.config.server_name {
        return Err(ApiError::not_found(&format!(
            "user {user} on this server (a server vouches only for its own users' devices)"
        )));
    }
    let device_keys = local_device_keys(state, &user).await?;
    let mut signed = remote::device_keys::signed(remote, device_keys);
    signed.transparency = lookup(state, &user).await?;
    Ok(signed)
}
