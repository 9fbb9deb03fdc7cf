//! The account's second factor (TOTP) from the web app's profile screen.

use actix_web::web;
use parley_sdk::Session;
use parley_specs::client_api::SecondFactorDisableRequest;

use super::{Answer, Data};
use crate::ui::api::{
    ConfirmSecondFactorRequest, DisableSecondFactorRequest, Empty, RecoveryCodes, SecondFactorEnrollmentView,
    SecondFactorState,
};
use crate::ui::error::ApiError;

async fn session(ui: &Data) -> Result<Session, ApiError> {
    let state = ui.state.lock().await;
    state.session.clone().ok_or_else(ApiError::not_signed_in)
}

pub(super) async fn state(ui: Data) -> Answer<SecondFactorState> {
    let status = session(&ui).await?.client()?.second_factor_status().await?;
    Ok(web::Json(SecondFactorState {
        enabled: status.enabled,
        pending: status.pending,
        recovery_codes_left: status.recovery_codes_left,
    }))
}

pub(super) async fn enroll(ui: Data) -> Answer<SecondFactorEnrollmentView> {
    let enrollment = session(&ui).await?.client()?.enroll_second_factor().await?;
    let qr_svg =
        crate::second_factor::qr_svg(&enrollment.otpauth_uri).map_err(|e| ApiError::server_error(e.to_string()))?;
    Ok(web::Json(SecondFactorEnrollmentView {
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
        qr_svg,
    }))
}

pub(super) async fn confirm(ui: Data, body: web::Json<ConfirmSecondFactorRequest>) -> Answer<RecoveryCodes> {
    let codes = session(&ui)
        .await?
        .client()?
        .confirm_second_factor(body.code.trim())
        .await?;
    Ok(web::Json(RecoveryCodes {
        recovery_codes: codes.recovery_codes,
    }))
}

pub(super) async fn disable(ui: Data, body: web::Json<DisableSecondFactorRequest>) -> Answer<Empty> {
    let body = body.into_inner();
    session(&ui)
        .await?
        .client()?
        .disable_second_factor(&SecondFactorDisableRequest {
            password: body.password,
            code: body.code.trim().to_owned(),
        })
        .await?;
    Ok(web::Json(Empty {}))
}
