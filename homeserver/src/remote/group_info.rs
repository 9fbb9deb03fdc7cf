//! Asking a group's hub for its GroupInfo and ratchet tree on behalf of a device of one
//! of this server's users (see `hub::group_info`).

use parley_specs::endpoints::federation::GROUP_INFO;
use parley_specs::federation_api::GroupInfoRequest;
use parley_specs::groups_api::GroupInfoResponse;
use parley_specs::{ErrorBody, ErrorCode, GroupId, UserId};

use super::{Remote, excerpt, unavailable};
use crate::error::ApiError;

pub async fn ask_hub(remote: &Remote, group: &GroupId, user: &UserId) -> Result<GroupInfoResponse, ApiError> {
    let hub = group.hub();
    let path = GROUP_INFO.path_with(&[group.as_str()]);
    let body = serde_json::to_vec(&GroupInfoRequest { user_id: user.clone() })
        .map_err(|e| ApiError::internal("encoding a group info request", e))?;
    // A tree grows with the group; the transaction size bounds what a hub sends anyway.
    let (status, bytes) = remote
        .call(reqwest::Method::POST, &hub, &path, body, remote.bulk_answer_limit())
        .await?;
    if status.is_success() {
        let answer: GroupInfoResponse = serde_json::from_slice(&bytes).map_err(|e| {
            unavailable(format!(
                "{hub} answered the group info request with something else: {e}"
            ))
        })?;
        if answer.group_id != *group {
            return Err(unavailable(format!("{hub} answered for another group")));
        }
        return Ok(answer);
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(refusal) if refusal.error == ErrorCode::NotFound => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("the group's hub {hub}: {}", refusal.message),
        )),
        _ => Err(unavailable(format!(
            "{hub} refused the group info request ({status}): {}",
            excerpt(&bytes)
        ))),
    }
}
