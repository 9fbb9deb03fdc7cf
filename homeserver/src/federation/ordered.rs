//! The hub's side of ordered messages: stored messages become signed `OrderedMessage`s
//! for followers, in transactions (see `outbound`) or when a follower backfills a gap.

use actix_web::{HttpRequest, web};
use parley_federation::hub_signature;
use parley_specs::federation_api::{BackfillPage, BackfillQuery, OrderedKind, OrderedMessage, SignedMessage};
use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, ErrorCode, GroupId, UserId};
use time::OffsetDateTime;

use super::{FederationState, authenticate, now_ms, parse_group_id};
use crate::error::ApiError;
use crate::store;
use crate::store::groups::{KIND_COMMIT, StoredMessage};

// Ordered messages carry times as Unix milliseconds (see `OrderedMessage`).
fn to_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// The message as followers receive it; `None` (logged) if a stored value no longer
/// parses, which only a damaged database can cause.
pub fn ordered(stored: StoredMessage) -> Option<OrderedMessage> {
    let parsed = (|| {
        let members = match stored.members {
            Some(json) => Some(serde_json::from_value::<Vec<GroupMember>>(json).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok::<_, String>(OrderedMessage {
            group_id: GroupId::parse(&stored.group_id).map_err(|e| e.to_string())?,
            seq: stored.seq,
            epoch: stored.epoch,
            kind: if stored.kind == KIND_COMMIT {
                OrderedKind::Commit
            } else {
                OrderedKind::Application
            },
            sender: GroupMember {
                user_id: UserId::parse(&stored.sender_user).map_err(|e| e.to_string())?,
                device_id: DeviceId::parse(&stored.sender_device).map_err(|e| e.to_string())?,
            },
            payload: stored.payload.into(),
            welcome: stored.welcome.map(Into::into),
            members,
            sent_at_ms: to_ms(stored.sent_at),
            expires_at_ms: stored.expires_at.map(to_ms),
        })
    })();
    match parsed {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::error!(group = %stored.group_id, seq = stored.seq, %error, "a stored message does not parse; not sent");
            None
        }
    }
}

/// Signed with this server's current key.
pub fn signed(state: &FederationState, message: OrderedMessage) -> SignedMessage {
    hub_signature::sign(&state.keys.current(), message, now_ms())
}

/// A follower that found a gap fetches the group's messages after its last one.
pub async fn backfill(
    state: web::Data<FederationState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<BackfillQuery>,
) -> Result<web::Json<BackfillPage>, ApiError> {
    let peer = authenticate(&req, &[], &state).await?;
    let group = parse_group_id(&path)?;
    if group.hub() != state.server_name {
        return Err(ApiError::new(
            ErrorCode::NotHubbedHere,
            format!("{group} is hubbed on {}, not here", group.hub()),
        ));
    }
    let max = state.config.max_transaction_messages;
    let limit = query
        .limit
        .map_or(max, |l| usize::try_from(l).unwrap_or(max).clamp(1, max));
    let db = state.pool.get().await?;
    let not_found = || ApiError::not_found(&format!("group {group} with members of {}", peer.origin));
    // Only a server with members may read the group's (encrypted) messages.
    if !store::groups::has_members_of(&db, &group, peer.origin.as_str()).await? {
        return Err(not_found());
    }
    let (_, last_seq) = store::groups::position(&db, &group).await?.ok_or_else(not_found)?;
    let stored = store::groups::messages_after(&db, &group, query.after, i64::try_from(limit).unwrap_or(1)).await?;
    let messages = stored
        .into_iter()
        .filter_map(ordered)
        .map(|m| signed(&state, m))
        .collect();
    Ok(web::Json(BackfillPage { messages, last_seq }))
}
