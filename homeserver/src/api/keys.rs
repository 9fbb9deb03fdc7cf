use actix_web::web;
use parley_specs::keys_api::{
    ClaimKeyPackagesRequest, ClaimKeyPackagesResponse, KeyPackageCount, UploadKeyPackagesRequest,
};

use super::auth::AuthedDevice;
use crate::error::ApiError;
use crate::key_packages;
use crate::state::AppState;

pub async fn upload(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<UploadKeyPackagesRequest>,
) -> Result<web::Json<KeyPackageCount>, ApiError> {
    Ok(web::Json(
        key_packages::upload(&state, &who.member(), body.into_inner().key_packages).await?,
    ))
}

pub async fn count(state: web::Data<AppState>, who: AuthedDevice) -> Result<web::Json<KeyPackageCount>, ApiError> {
    Ok(web::Json(key_packages::count(&state, &who.device_id).await?))
}

pub async fn claim(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<ClaimKeyPackagesRequest>,
) -> Result<web::Json<ClaimKeyPackagesResponse>, ApiError> {
    Ok(web::Json(
        key_packages::claim(&state, &who.member(), body.into_inner().user_id).await?,
    ))
}
