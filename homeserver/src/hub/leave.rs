//! Leaving a group alone: a member's user leaves while every other member is offline.
//!
//! The leaving device asks its homeserver (`POST /client/v1/groups/{g}/leave`; a follower
//! forwards it to the hub). Under the group's row lock the hub adds the user to the
//! group's `leaving_users`: from then on it takes no application message from that
//! user's devices (`not_a_member`), writes no inbox entry for them, and takes no commit
//! that keeps one of their leaves (`member_left`), so the next commit, whoever makes it,
//! removes them; a member who is not an admin may (see `roles`). The leaver's own client
//! also sends an encrypted `leave` message first, which is what the other clients check
//! that removal against (they never take the hub's word for who left).

use parley_specs::endpoints::federation::LEAVE_GROUP;
use parley_specs::federation_api::ForwardedLeave;
use parley_specs::groups_api::{GroupMember, LeftGroup};
use parley_specs::{ErrorCode, GroupId, ServerName, UserId};

use super::{check_forwarded, not_a_member, remote_to_hub};
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store;

/// `who`'s user leaves `group_id` (forwarded to the hub for a group hubbed elsewhere,
/// and then recorded here too, so that this server stops delivering to its devices).
pub async fn leave_group(state: &AppState, who: &GroupMember, group_id: GroupId) -> Result<LeftGroup, ApiError> {
    if group_id.hub() != state.config.server_name {
        let forwarded = ForwardedLeave { sender: who.clone() };
        let left: LeftGroup =
            remote::forward::forward_for(remote_to_hub(state, &group_id)?, &group_id, LEAVE_GROUP, &forwarded).await?;
        if left.group_id != group_id {
            return Err(ApiError::new(
                ErrorCode::RemoteUnavailable,
                "the hub answered for another group",
            ));
        }
        // As a follower: no more inbox entries of the group for the leaver's devices.
        record(state, who, &group_id).await?;
        return Ok(left);
    }
    let leaving = record(state, who, &group_id).await?;
    tracing::info!(group = %group_id, user = %who.user_id, "member left");
    Ok(LeftGroup { group_id, leaving })
}

/// Adds `who`'s user to the group's `leaving_users` under its row lock (a member device
/// only); returns the list.
async fn record(state: &AppState, who: &GroupMember, group_id: &GroupId) -> Result<Vec<UserId>, ApiError> {
    let mut db = state.pool.get().await?;
    let tx = db.transaction().await?;
    let locked = store::groups::lock(&tx, group_id)
        .await?
        .ok_or_else(|| not_a_member(group_id))?;
    let user = who.user_id.as_str().to_owned();
    if !store::groups::is_member(&tx, group_id, who).await? && !locked.leaving.contains(&user) {
        return Err(not_a_member(group_id));
    }
    let mut leaving = locked.leaving;
    if !leaving.contains(&user) {
        leaving.push(user);
        store::groups::set_leaving(&tx, group_id, &leaving).await?;
    }
    tx.commit().await?;
    Ok(leaving.iter().filter_map(|u| UserId::parse(u).ok()).collect())
}

/// A leave forwarded by `origin`, the server of the leaving user, for a group hubbed here.
pub async fn leave_forwarded(
    state: &AppState,
    origin: &ServerName,
    group_id: GroupId,
    forwarded: ForwardedLeave,
) -> Result<LeftGroup, ApiError> {
    check_forwarded(state, origin, &group_id, &forwarded.sender)?;
    leave_group(state, &forwarded.sender, group_id).await
}

/// For a commit about to be accepted: refuses it while it keeps a leaf of a user who
/// left (`after`: the member devices after it), and clears the users it removed.
pub async fn check_commit(
    db: &impl store::Db,
    group: &GroupId,
    leaving: &[String],
    after: &std::collections::BTreeSet<GroupMember>,
) -> Result<(), ApiError> {
    if leaving.is_empty() {
        return Ok(());
    }
    let kept: Vec<&String> = leaving
        .iter()
        .filter(|u| after.iter().any(|m| m.user_id.as_str() == u.as_str()))
        .collect();
    if !kept.is_empty() {
        let names: Vec<&str> = kept.iter().map(|u| u.as_str()).collect();
        return Err(ApiError::new(
            ErrorCode::MemberLeft,
            format!(
                "{} left {group}; commit the removal of their devices first",
                names.join(", ")
            ),
        ));
    }
    store::groups::set_leaving(db, group, &[]).await?;
    Ok(())
}
