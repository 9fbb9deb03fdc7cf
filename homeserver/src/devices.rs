//! The devices of this server's users: which device an access token belongs to, and
//! what a user may do with their own devices (list, rename, revoke).

use parley_specs::client_api::DeviceInfo;
use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, ErrorCode, Localpart, UserId};
use subtle::ConstantTimeEq;

use crate::accounts::checked_device_name;
use crate::credentials::token_hash;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, devices::DeviceRow};

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
    if !store::devices::delete(&state.pool.get().await?, &who.localpart, device_id).await? {
        return Err(ApiError::not_found("device"));
    }
    Ok(())
}

/// Revokes the device making the request.
pub async fn log_out(state: &AppState, who: &Device) -> Result<(), ApiError> {
    store::devices::delete(&state.pool.get().await?, &who.localpart, &who.device_id).await?;
    Ok(())
}

/// Revokes every device of the user, the one making the request included.
pub async fn log_out_everywhere(state: &AppState, who: &Device) -> Result<(), ApiError> {
    store::devices::delete_all_except(&state.pool.get().await?, &who.localpart, None).await?;
    Ok(())
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
