//! Claiming KeyPackages of another server's user from that server.

use parley_specs::UserId;
use parley_specs::endpoints::federation::CLAIM_KEY_PACKAGES;
use parley_specs::keys_api::{ClaimKeyPackagesRequest, ClaimKeyPackagesResponse};

use super::{Remote, refused, unavailable};
use crate::error::ApiError;

pub async fn claim(remote: &Remote, user: &UserId) -> Result<ClaimKeyPackagesResponse, ApiError> {
    let destination = user.server_name();
    let body = serde_json::to_vec(&ClaimKeyPackagesRequest { user_id: user.clone() })
        .map_err(|e| ApiError::internal("encoding a claim", e))?;
    let (status, bytes) = remote
        .call(
            reqwest::Method::POST,
            &destination,
            CLAIM_KEY_PACKAGES.path,
            body,
            remote.bulk_answer_limit(),
        )
        .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(&format!("user {user}")));
    }
    if !status.is_success() {
        return Err(refused(&destination, "the claim", status, &bytes));
    }
    let claimed: ClaimKeyPackagesResponse = serde_json::from_slice(&bytes)
        .map_err(|e| unavailable(format!("{destination} answered the claim with something else: {e}")))?;
    if claimed.user_id != *user {
        return Err(unavailable(format!(
            "{destination} answered for {} instead of {user}",
            claimed.user_id
        )));
    }
    Ok(claimed)
}
