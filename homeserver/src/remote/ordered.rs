//! Ordered messages between a hub and its followers: stored messages become signed
//! `OrderedMessage`s for followers, in transactions (see `outbound`) or when a follower
//! backfills a gap; a follower checks the hub's signature on each it receives.

use parley_federation::hub_signature::{self, HubSignatureError, VerifiedMessage};
use parley_federation::key_document::VerifiedKeys;
use parley_specs::federation_api::{OrderedKind, OrderedMessage, SignedMessage};
use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, GroupId, UserId};
use time::OffsetDateTime;

use super::{Remote, now_ms};
use crate::cpu_pool;
use crate::error::ApiError;
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
pub fn signed(remote: &Remote, message: OrderedMessage) -> SignedMessage {
    hub_signature::sign(&remote.keys.current(), message, now_ms())
}

/// Messages per job when checking a transaction's hub signatures on the CPU pool.
const VERIFY_CHUNK: usize = 32;

/// Checks every message's hub signature; a large transaction in chunks on the CPU pool:
/// its milliseconds of work should neither stall this request's worker thread nor wait
/// for one core when there are more.
pub async fn verify_all(
    messages: Vec<SignedMessage>,
    keys: &VerifiedKeys,
    refused: impl Fn(HubSignatureError) -> ApiError,
) -> Result<Vec<VerifiedMessage>, ApiError> {
    if messages.len() <= VERIFY_CHUNK {
        // Fewer than a chunk: the hop to the pool would cost more than it saves.
        return messages
            .into_iter()
            .map(|m| hub_signature::verify(m, keys).map_err(&refused))
            .collect();
    }
    let mut chunks = Vec::new();
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        let chunk: Vec<SignedMessage> = messages.by_ref().take(VERIFY_CHUNK).collect();
        let keys = keys.clone();
        chunks.push(cpu_pool::run(move || {
            chunk
                .into_iter()
                .map(|m| hub_signature::verify(m, &keys))
                .collect::<Result<Vec<_>, _>>()
        }));
    }
    let mut verified = Vec::new();
    for chunk in futures_util::future::try_join_all(chunks).await? {
        verified.extend(chunk.map_err(&refused)?);
    }
    Ok(verified)
}
