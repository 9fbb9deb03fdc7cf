use actix_web::{HttpResponse, web};
use parley_specs::client_api::{DeviceInfo, DeviceList, RenameDeviceRequest};
use parley_specs::keys_api::UserDevices;
use parley_specs::{DeviceId, ErrorCode};

use super::auth::AuthedDevice;
use super::no_content;
use crate::devices;
use crate::error::ApiError;
use crate::routes::parse_user_id;
use crate::state::AppState;

pub async fn list(state: web::Data<AppState>, who: AuthedDevice) -> Result<web::Json<DeviceList>, ApiError> {
    let devices = devices::list(&state, &who).await?;
    Ok(web::Json(DeviceList { devices }))
}

pub async fn rename(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
    body: web::Json<RenameDeviceRequest>,
) -> Result<web::Json<DeviceInfo>, ApiError> {
    let device_id = parse_device_id(&path)?;
    Ok(web::Json(
        devices::rename(&state, &who, &device_id, &body.display_name).await?,
    ))
}

pub async fn delete(
    state: web::Data<AppState>,
    who: AuthedDevice,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    devices::delete(&state, &who, &parse_device_id(&path)?).await?;
    Ok(no_content())
}

/// The device key directory: any user's devices with their keys.
pub async fn of_user(
    state: web::Data<AppState>,
    _who: AuthedDevice,
    path: web::Path<String>,
) -> Result<web::Json<UserDevices>, ApiError> {
    let user = parse_user_id(&path)?;
    Ok(web::Json(devices::user_devices(&state, user).await?))
}

fn parse_device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidParam, e.to_string()))
}
