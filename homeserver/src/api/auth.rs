//! Bearer-token authentication of devices, as an extractor.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use parley_specs::ErrorCode;

use crate::devices::{self, Device};
use crate::error::ApiError;
use crate::state::AppState;

/// A request made by a logged-in device. Only this extractor builds one, so a handler
/// that takes it cannot run for an unauthenticated request; handlers pass the `Device`
/// it holds to the domain.
#[derive(Debug, Clone)]
pub struct AuthedDevice(Device);

impl Deref for AuthedDevice {
    type Target = Device;

    fn deref(&self) -> &Device {
        &self.0
    }
}

impl FromRequest for AuthedDevice {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("authentication", "AppState missing"))?;
            Ok(Self(devices::by_access_token(&state, &token?).await?))
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let missing = || ApiError::new(ErrorCode::MissingToken, "send `Authorization: Bearer <access token>`");
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim().to_owned())
}
