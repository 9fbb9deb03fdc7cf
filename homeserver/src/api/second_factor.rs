//! The account's second factor (TOTP): status, enrolment, confirmation, disabling.

use actix_web::{HttpResponse, web};
use parley_specs::client_api::{
    SecondFactorConfirmRequest, SecondFactorDisableRequest, SecondFactorEnrollment, SecondFactorRecoveryCodes,
    SecondFactorStatus,
};

use super::auth::AuthedDevice;
use super::no_content;
use crate::error::ApiError;
use crate::routes::ClientAddr;
use crate::state::AppState;
use crate::{accounts, second_factor};

pub async fn status(state: web::Data<AppState>, who: AuthedDevice) -> Result<web::Json<SecondFactorStatus>, ApiError> {
    Ok(web::Json(second_factor::status(&state, &who).await?))
}

pub async fn enroll(
    state: web::Data<AppState>,
    who: AuthedDevice,
) -> Result<web::Json<SecondFactorEnrollment>, ApiError> {
    Ok(web::Json(second_factor::enroll(&state, &who).await?))
}

pub async fn confirm(
    state: web::Data<AppState>,
    who: AuthedDevice,
    body: web::Json<SecondFactorConfirmRequest>,
) -> Result<web::Json<SecondFactorRecoveryCodes>, ApiError> {
    Ok(web::Json(second_factor::confirm(&state, &who, &body.code).await?))
}

pub async fn disable(
    state: web::Data<AppState>,
    client: ClientAddr,
    who: AuthedDevice,
    body: web::Json<SecondFactorDisableRequest>,
) -> Result<HttpResponse, ApiError> {
    accounts::disable_second_factor(&state, &who, body.into_inner(), client.0).await?;
    Ok(no_content())
}
