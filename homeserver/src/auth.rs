//! Bearer-token authentication of devices.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, ErrorCode, Localpart, UserId};
use subtle::ConstantTimeEq;

use crate::credentials::token_hash;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store;

/// A request made by a logged-in device. Only this extractor builds one, so a handler
/// that takes it cannot run for an unauthenticated request.
#[derive(Debug, Clone)]
pub struct AuthedDevice {
    pub localpart: Localpart,
    pub user_id: UserId,
    pub device_id: DeviceId,
}

impl AuthedDevice {
    /// This device as a group member.
    pub fn member(&self) -> GroupMember {
        GroupMember {
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
        }
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
            authenticate(&state, token?).await
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

async fn authenticate(state: &AppState, token: String) -> Result<AuthedDevice, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownToken,
            "the access token is unknown or was revoked; log in again",
        )
    };
    let hash = token_hash(&token);
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
    Ok(AuthedDevice {
        user_id: UserId::new(&localpart, &state.config.server_name),
        localpart,
        device_id,
    })
}
