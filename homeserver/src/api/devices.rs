use actix_web::{HttpResponse, web};
use parley_specs::client_api::{DeviceInfo, DeviceList, RenameDeviceRequest};
use parley_specs::{DeviceId, ErrorCode};

use super::no_content;
use crate::accounts::checked_device_name;
use crate::auth::AuthedDevice;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{self, devices::DeviceRow};

pub async fn list(state: web::Data<AppState>, who: AuthedDevice) -> Result<web::Json<DeviceList>, ApiError> {
    let rows = store::devices::list(&state.pool.get().await?, &who.localpart).await?;
    let devices = rows.into_iter().map(|row| info(row, &who)).collect::<Result<_, _>>()?;
    Ok(web::Json(DeviceList { devices }))
}

pub async fn rename(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    body: web::Json<RenameDeviceRequest>,
) -> Result<web::Json<DeviceInfo>, ApiError> {
    let device_id = parse_device_id(&path)?;
    let name = checked_device_name(&body.display_name)?;
    let row = store::devices::rename(&state.pool.get().await?, &who.localpart, &device_id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("device"))?;
    Ok(web::Json(info(row, &who)?))
}

pub async fn delete(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device_id = parse_device_id(&path)?;
    if !store::devices::delete(&state.pool.get().await?, &who.localpart, &device_id).await? {
        return Err(ApiError::not_found("device"));
    }
    Ok(no_content())
}

fn parse_device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
}

fn info(row: DeviceRow, who: &AuthedDevice) -> Result<DeviceInfo, ApiError> {
    let device_id = DeviceId::parse(&row.device_id).map_err(|e| ApiError::internal("stored device id", e))?;
    Ok(DeviceInfo {
        current: device_id == who.device_id,
        device_id,
        display_name: row.display_name,
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
    })
}
