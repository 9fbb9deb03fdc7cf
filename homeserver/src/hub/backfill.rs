//! Messages a follower missed: a server with members in a group hubbed here that found a
//! gap in its sequence numbers reads the messages after its last one, signed by the hub.

use parley_specs::federation_api::BackfillPage;
use parley_specs::{GroupId, ServerName};

use super::not_hubbed_here;
use crate::error::ApiError;
use crate::remote::Remote;
use crate::remote::ordered::{ordered, signed};
use crate::store;

/// Up to `limit` (at most a transaction's worth) messages of `group` after `after`, for
/// `origin`.
pub async fn page(
    remote: &Remote,
    origin: &ServerName,
    group: &GroupId,
    after: i64,
    limit: Option<u32>,
) -> Result<BackfillPage, ApiError> {
    if group.hub() != remote.server_name {
        return Err(not_hubbed_here(group));
    }
    let max = remote.config.max_transaction_messages;
    let limit = limit.map_or(max, |l| usize::try_from(l).unwrap_or(max).clamp(1, max));
    let db = remote.pool.get().await?;
    let not_found = || ApiError::not_found(&format!("group {group} with members of {origin}"));
    // Only a server with members may read the group's (encrypted) messages.
    if !store::groups::has_members_of(&db, group, origin.as_str()).await? {
        return Err(not_found());
    }
    let (_, last_seq) = store::groups::position(&db, group).await?.ok_or_else(not_found)?;
    let stored = store::groups::messages_after(&db, group, after, i64::try_from(limit).unwrap_or(1)).await?;
    let messages = stored
        .into_iter()
        .filter_map(ordered)
        .map(|m| signed(remote, m))
        .collect();
    Ok(BackfillPage { messages, last_seq })
}
