//! Asking a group's hub how far each member server has stored the group's messages.

use parley_specs::GroupId;
use parley_specs::endpoints::federation::GROUP_DELIVERY;
use parley_specs::federation_api::FederatedGroupDelivery;
use parley_specs::groups_api::GroupDelivery;

use super::{MAX_SMALL_ANSWER_BYTES, Remote, refused, unavailable};
use crate::error::ApiError;

pub async fn ask_hub(remote: &Remote, group: &GroupId) -> Result<GroupDelivery, ApiError> {
    let hub = group.hub();
    let path = GROUP_DELIVERY.path_with(&[group.as_str()]);
    let (status, bytes) = remote
        .call(reqwest::Method::GET, &hub, &path, Vec::new(), MAX_SMALL_ANSWER_BYTES)
        .await?;
    if !status.is_success() {
        return Err(refused(&hub, "the delivery request", status, &bytes));
    }
    let mut answer: FederatedGroupDelivery = serde_json::from_slice(&bytes)
        .map_err(|e| unavailable(format!("{hub} answered the delivery request with something else: {e}")))?;
    if answer.group_id != *group {
        return Err(unavailable(format!("{hub} answered for another group")));
    }
    answer.partial = false;
    Ok(answer)
}
