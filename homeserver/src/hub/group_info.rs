//! The GroupInfo and ratchet tree of a group's current epoch, served so that a device can
//! join without any other device online: a user's new device (by external commit) and a
//! device added with a Welcome that lacks the ratchet-tree extension.
//!
//! The hub keeps the GroupInfo its creator or last committer signed (checked against the
//! hub's own state when the commit was accepted) and serves it with the tree of its
//! `PublicGroup`. It answers for any device of a user who has a member device in the
//! group; everyone else learns nothing, not even whether the group exists. A device of a
//! server that follows the group asks its own server, which asks the hub for its user.

use openmls::prelude::GroupId as MlsGroupId;
use parley_specs::groups_api::{GroupInfoResponse, GroupMember};
use parley_specs::{GroupId, ServerName, UserId};

use super::public_state::PublicState;
use super::{mls, not_hubbed_here, remote_to_hub};
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store;

/// For a device of this server: from the store when the group is hubbed here, else from
/// its hub.
pub async fn for_device(state: &AppState, who: &GroupMember, group: GroupId) -> Result<GroupInfoResponse, ApiError> {
    if group.hub() != state.config.server_name {
        let remote = remote_to_hub(state, &group)?;
        remote.check_hub_question(&who.user_id)?;
        return remote::group_info::ask_hub(remote, &group, &who.user_id).await;
    }
    hubbed_here(state, &who.user_id, group).await
}

/// For `origin`, asking for a device of its user `user`.
pub async fn for_server(
    state: &AppState,
    origin: &ServerName,
    group: GroupId,
    user: &UserId,
) -> Result<GroupInfoResponse, ApiError> {
    if group.hub() != state.config.server_name {
        return Err(not_hubbed_here(&group));
    }
    // A server asks for its own users only; otherwise nothing is said, as for a group
    // without members of the origin.
    if user.server_name() != *origin {
        return Err(ApiError::not_found(&format!("group {group} with members of {origin}")));
    }
    hubbed_here(state, user, group).await
}

async fn hubbed_here(state: &AppState, user: &UserId, group: GroupId) -> Result<GroupInfoResponse, ApiError> {
    let not_found = || ApiError::not_found(&format!("group {group} with a member device of {user}"));
    let db = state.pool.get().await?;
    if !store::groups::has_user(&db, &group, user).await? {
        return Err(not_found());
    }
    let row = store::groups::group_info(&db, &group).await?.ok_or_else(not_found)?;
    let Some(group_info) = row.group_info else {
        return Err(ApiError::not_found(&format!(
            "a GroupInfo of group {group} (it has had no commit since the hub began keeping them)"
        )));
    };
    let public = PublicState::load(&row.public_state, &MlsGroupId::from_slice(group.as_str().as_bytes()))?;
    let ratchet_tree = mls::export_tree(&public.group)?;
    Ok(GroupInfoResponse {
        group_id: group,
        epoch: row.epoch,
        group_info: group_info.into(),
        ratchet_tree: ratchet_tree.into(),
    })
}
