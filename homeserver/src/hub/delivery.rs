//! How far each server with members in a group has stored its messages. The hub knows:
//! its own server has everything up to the group's last sequence number, and another
//! server everything before the oldest message still queued for it (rows leave the
//! queue when that server answered the transaction carrying them). A follower asks the
//! hub, and answers with only its own position (`partial`) when the hub is unreachable.

use std::collections::{BTreeSet, HashMap};

use parley_specs::groups_api::{GroupDelivery, GroupMember, ServerDelivery};
use parley_specs::{GroupId, ServerName};

use super::{check_followed_by, not_followed};
use crate::error::ApiError;
use crate::remote;
use crate::state::AppState;
use crate::store::{self, Db};

/// The hub's view; None when the group is not stored here.
async fn hub_view(db: &impl Db, own: &ServerName, group: &GroupId) -> Result<Option<GroupDelivery>, ApiError> {
    // The last sequence number first: a message accepted after it is read can only make
    // the queue's answer older, never claim a message that is still queued.
    let Some((_, last_seq)) = store::groups::position(db, group).await? else {
        return Ok(None);
    };
    let servers: BTreeSet<ServerName> = store::groups::members(db, group)
        .await?
        .iter()
        .map(|m| m.user_id.server_name())
        .collect();
    let queued: HashMap<String, i64> = store::federation::oldest_queued_of_group(db, group.as_str())
        .await?
        .into_iter()
        .collect();
    let servers = servers
        .into_iter()
        .map(|server| {
            let delivered_up_to = if server == *own {
                last_seq
            } else {
                queued
                    .get(server.as_str())
                    .map_or(last_seq, |oldest| (oldest - 1).min(last_seq))
            };
            ServerDelivery {
                server,
                delivered_up_to,
            }
        })
        .collect();
    Ok(Some(GroupDelivery {
        group_id: group.clone(),
        servers,
        partial: false,
    }))
}

/// How far the group's messages were stored, for a member device.
pub async fn for_member(app: &AppState, who: &GroupMember, group: GroupId) -> Result<GroupDelivery, ApiError> {
    let own = &app.config.server_name;
    let db = app.pool.get().await?;
    // Non-members (and callers naming a group unknown here) learn nothing.
    if !store::groups::is_member(&db, &group, who).await? {
        return Err(super::not_a_member(&group));
    }
    if group.hub() == *own {
        return hub_view(&db, own, &group)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("group {group}")));
    }
    let own_position = store::groups::position(&db, &group).await?.map_or(0, |(_, seq)| seq);
    drop(db);
    let asked = match app.remote.as_ref() {
        Some(remote) => {
            remote.check_hub_question(&who.user_id)?;
            remote::delivery::ask_hub(remote, &group).await
        }
        None => Err(remote::unavailable(format!(
            "this server does not federate with {}",
            group.hub()
        ))),
    };
    match asked {
        Ok(answer) => Ok(answer),
        Err(error) => {
            tracing::info!(%group, %error, "the hub did not say how far the group was delivered; answering for this server only");
            Ok(GroupDelivery {
                group_id: group,
                servers: vec![ServerDelivery {
                    server: own.clone(),
                    delivered_up_to: own_position,
                }],
                partial: true,
            })
        }
    }
}

/// The hub's view for `origin`, a server with members in `group`.
pub async fn for_server(app: &AppState, origin: &ServerName, group: &GroupId) -> Result<GroupDelivery, ApiError> {
    let own = &app.config.server_name;
    let db = app.pool.get().await?;
    check_followed_by(&db, own, origin, group).await?;
    hub_view(&db, own, group)
        .await?
        .ok_or_else(|| not_followed(group, origin))
}
