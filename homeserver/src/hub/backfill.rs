//! Messages a follower missed: a server with members in a group hubbed here that found a
//! gap in its sequence numbers reads the messages after its last one, signed by the hub.

use parley_specs::federation_api::{BackfillPage, SignedMessage};
use parley_specs::{GroupId, ServerName};

use super::{check_followed_by, not_followed};
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
    let max = remote.config.max_transaction_messages;
    let limit = limit.map_or(max, |l| usize::try_from(l).unwrap_or(max).clamp(1, max));
    let db = remote.pool.get().await?;
    check_followed_by(&db, &remote.server_name, origin, group).await?;
    let (_, last_seq) = store::groups::position(&db, group)
        .await?
        .ok_or_else(|| not_followed(group, origin))?;
    let stored = store::groups::messages_after(&db, group, after, i64::try_from(limit).unwrap_or(1)).await?;
    let messages = stored
        .into_iter()
        .filter_map(ordered)
        .map(|m| signed(remote, m))
        .collect();
    Ok(BackfillPage {
        messages: within_transaction_size(messages, remote.config.max_transaction_bytes),
        last_seq,
    })
}

/// `{"messages":[],"last_seq":-9223372036854775808}` and some.
const PAGE_ENVELOPE_BYTES: usize = 64;

/// The first messages whose page fits in `max_bytes`, as a transaction would: a follower
/// reads no more of a page than that (`remote::Remote::bulk_answer_limit`), and asks for
/// the rest with the next page. The first message always goes, as in a transaction.
fn within_transaction_size(messages: Vec<SignedMessage>, max_bytes: usize) -> Vec<SignedMessage> {
    let budget = max_bytes.saturating_sub(PAGE_ENVELOPE_BYTES);
    let mut used = 0usize;
    messages
        .into_iter()
        .enumerate()
        .take_while(|(i, message)| {
            // The comma between messages counts too.
            used = used.saturating_add(serde_json::to_vec(message).map_or(0, |json| json.len()) + 1);
            *i == 0 || used <= budget
        })
        .map(|(_, message)| message)
        .collect()
}

#[cfg(test)]
mod tests {
    use parley_specs::federation_api::{HubSignature, OrderedKind, OrderedMessage};
    use parley_specs::groups_api::GroupMember;
    use parley_specs::{DeviceId, GroupId, UserId};

    use super::*;

    fn message(seq: i64, payload_bytes: usize) -> SignedMessage {
        SignedMessage {
            message: OrderedMessage {
                group_id: GroupId::parse("g@a.example").unwrap(),
                seq,
                epoch: 1,
                kind: OrderedKind::Application,
                sender: GroupMember {
                    user_id: UserId::parse("ann@a.example").unwrap(),
                    device_id: DeviceId::parse("DEV1").unwrap(),
                },
                payload: vec![7; payload_bytes].into(),
                welcome: None,
                members: None,
                sent_at_ms: 1,
                expires_at_ms: None,
            },
            hub_signature: HubSignature {
                key_id: "ed25519:1".into(),
                signed_at_ms: 1,
                signature: "s".into(),
            },
        }
    }

    #[test]
    fn a_page_is_cut_at_the_transaction_size_and_holds_at_least_one_message() {
        let messages: Vec<_> = (1..=100).map(|seq| message(seq, 30_000)).collect();
        let max = 256 * 1024;
        let page = BackfillPage {
            messages: within_transaction_size(messages.clone(), max),
            last_seq: i64::MIN,
        };
        assert!((1..100).contains(&page.messages.len()), "{}", page.messages.len());
        assert!(serde_json::to_vec(&page).unwrap().len() <= max);
        assert_eq!(
            page.messages.last().map(|m| m.message.seq),
            Some(page.messages.len() as i64)
        );
        assert_eq!(
            within_transaction_size(messages.clone(), 10).len(),
            1,
            "the first always goes"
        );
        assert_eq!(within_transaction_size(messages, usize::MAX).len(), 100);
    }
}
