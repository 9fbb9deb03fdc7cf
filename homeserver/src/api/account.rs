use actix_web::{HttpResponse, web};
use parley_specs::client_api::{ChangePasswordRequest, LoginRequest, RegisterRequest, WhoAmIResponse};

use super::auth::AuthedDevice;
use super::no_content;
use crate::error::ApiError;
use crate::routes::ClientAddr;
use crate::state::AppState;
use crate::{accounts, devices};

pub async fn register(
    state: web::Data<AppState>,
    client: ClientAddr,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let session = accounts::register(&state, body.into_inner(), client.0).await?;
    Ok(HttpResponse::Created().json(session))
}

pub async fn login(
    state: web::Data<AppState>,
    client: ClientAddr,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let session = accounts::login(&state, body.into_inner(), client.0).await?;
    Ok(HttpResponse::Ok().json(session))
}

pub async fn logout(state: web::Data<AppState>, who: AuthedDevice) -> Result<HttpResponse, ApiError> {
    devices::log_out(&state, &who).await?;
    Ok(no_content())
}

pub async fn logout_all(state: web::Data<AppState>, who: AuthedDevice) -> Result<HttpResponse, ApiError> {
    devices::log_out_everywhere(&state, &who).await?;
    Ok(no_content())
}

pub async fn whoami(who: AuthedDevice) -> web::Json<WhoAmIResponse> {
    web::Json(WhoAmIResponse {
        user_id: who.user_id.clone(),
        device_id: who.device_id.clone(),
    })
}

pub async fn change_password(
    state: web::Data<AppState>,
    client: ClientAddr,
    who: AuthedDevice,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts::change_password(&state, &who, body.into_inner(), client.0).await?;
    Ok(no_content())
}
