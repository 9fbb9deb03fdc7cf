//! A follower's side of groups hubbed elsewhere: it stores the hub's ordered messages of
//! groups with members here and fans them out to its devices' inboxes, in the hub's
//! order and each once. A message after a gap in a group's sequence numbers is not
//! stored: the follower backfills from the hub first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parley_federation::hub_signature::VerifiedMessage;
use parley_federation::key_document::VerifiedKeys;
use parley_specs::federation_api::{OrderedKind, OrderedMessage, Transaction, TransactionResult};
use parley_specs::groups_api::{GroupMember, InboxEntry, InboxEntryKind};
use parley_specs::{ErrorCode, GroupId, ServerName};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::inbox::FreshEntry;
use crate::remote::ordered::{from_ms, verify_all};
use crate::remote::{self, Remote};
use crate::state::AppState;
use crate::store;
use crate::store::groups::{KIND_APPLICATION, KIND_COMMIT, NewMessage};
use crate::store::inbox::{Appended, NewEntry, Recipient};

/// A transaction from `origin`, a hub sending messages of its groups, whose signatures
/// (`keys`) are not checked yet. Gaps start a backfill in the background.
pub async fn receive(
    app: &Arc<AppState>,
    remote: &Arc<Remote>,
    origin: &ServerName,
    keys: &VerifiedKeys,
    transaction: Transaction,
) -> Result<TransactionResult, ApiError> {
    let max = remote.config.max_transaction_messages;
    if transaction.messages.len() > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the transaction has {} messages; at most {max}",
                transaction.messages.len()
            ),
        ));
    }
    // Every message must be of a group the origin hubs, signed by it: otherwise nothing
    // of the transaction is stored.
    if let Some(foreign) = transaction
        .messages
        .iter()
        .find(|m| m.message.group_id.hub() != *origin)
    {
        let group = &foreign.message.group_id;
        return Err(ApiError::new(
            ErrorCode::NotGroupHub,
            format!("{origin} is not the hub of {group}; its hub is {}", group.hub()),
        ));
    }
    // Sequence numbers start at 1; anything else is not a hub's (and `seq - 1` below must
    // not overflow).
    if let Some(bad) = transaction.messages.iter().find(|m| m.message.seq < 1) {
        return Err(ApiError::new(
            ErrorCode::InvalidParam,
            format!(
                "message {} of {} has no valid sequence number (they start at 1)",
                bad.message.seq, bad.message.group_id
            ),
        ));
    }
    // What a hub could not have accepted is not stored either.
    let max_bytes = app.config.limits.max_message_bytes;
    if let Some(large) = transaction.messages.iter().find(|m| {
        m.message.payload.as_slice().len() > max_bytes
            || m.message
                .welcome
                .as_ref()
                .is_some_and(|w| w.as_slice().len() > max_bytes)
    }) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "message {} of {} is larger than {max_bytes} bytes (limits.max_message_bytes)",
                large.message.seq, large.message.group_id
            ),
        ));
    }
    let verified = verify_all(transaction.messages, keys, |e| {
        ApiError::new(ErrorCode::InvalidSignature, e.to_string())
    })
    .await?;
    let result = apply(app, verified, false).await?;
    for group in &result.backfilling {
        if remote.backfills.start(group) {
            let (app, remote, group) = (app.clone(), remote.clone(), group.clone());
            tokio::spawn(async move {
                if let Err(error) = backfill(&app, &remote, &group).await {
                    tracing::warn!(%group, %error, "backfill failed; the next message of the group retries it");
                }
                remote.backfills.finish(&group);
            });
        }
    }
    Ok(result)
}

/// Fetches a group's messages after the last one stored here, until none is missing.
async fn backfill(app: &AppState, remote: &Remote, group: &GroupId) -> Result<(), ApiError> {
    loop {
        let after = {
            let db = app.pool.get().await?;
            store::groups::position(&db, group).await?.map_or(0, |(_, seq)| seq)
        };
        let (verified, last_seq) = remote::backfill::fetch_page(remote, group, after).await?;
        let Some(last) = verified.last().map(|m| m.message().seq) else {
            return Ok(());
        };
        if apply(app, verified, true).await?.stored == 0 {
            // A page of nothing new would be asked for again and again.
            return Err(remote::unavailable(format!(
                "{} backfilled nothing after {after}",
                group.hub()
            )));
        }
        tracing::info!(%group, after, up_to = last, "backfilled");
        if last >= last_seq {
            return Ok(());
        }
    }
}

/// Stores the messages that follow each group's last stored one and fans them out, in
/// one transaction. From a backfill the hub's page is complete up to its last message
/// (sequence numbers it skips were deleted when they expired), so gaps are accepted.
async fn apply(
    app: &AppState,
    verified: Vec<VerifiedMessage>,
    from_backfill: bool,
) -> Result<TransactionResult, ApiError> {
    let mut groups: BTreeMap<String, Vec<OrderedMessage>> = BTreeMap::new();
    for message in verified.into_iter().map(VerifiedMessage::into_message) {
        groups
            .entry(message.group_id.as_str().to_owned())
            .or_default()
            .push(message);
    }
    for messages in groups.values_mut() {
        messages.sort_by_key(|m| m.seq);
        messages.dedup_by_key(|m| m.seq);
    }
    let server_name = &app.config.server_name;
    let local = |m: &&GroupMember| m.user_id.server_name() == *server_name;
    let mut result = TransactionResult::default();
    let mut db = app.pool.get().await?;
    let tx = db.transaction().await?;
    // Only groups in which devices of this server are members, as the hub's own group
    // state says: a group starts being followed at the commit that adds the first of
    // them. Anything else a hub sends (a group with no members here, or messages before
    // that commit) is acknowledged as ignored and not stored.
    let ids: Vec<&str> = groups.keys().map(String::as_str).collect();
    let known = store::groups::members_of_many(&tx, &ids).await?;
    groups.retain(|id, messages| {
        let followed = known.get(id).is_some_and(|members| members.iter().any(|m| local(&m)));
        let from = if followed {
            0
        } else {
            messages
                .iter()
                .position(|m| m.kind == OrderedKind::Commit && m.members.iter().flatten().any(|m| local(&m)))
                .unwrap_or(messages.len())
        };
        result.ignored += from as u64;
        messages.drain(..from);
        !messages.is_empty()
    });
    let starts: Vec<(&str, i64, u64)> = groups
        .iter()
        .filter_map(|(id, messages)| messages.first().map(|m| (id.as_str(), m.seq - 1, m.epoch)))
        .collect();
    let ids: Vec<&str> = groups.keys().map(String::as_str).collect();
    store::groups::follow(&tx, &starts).await?;
    let (locked, mut members) = tokio::try_join!(
        store::groups::lock_many(&tx, &ids),
        store::groups::members_of_many(&tx, &ids),
    )?;
    let locked: HashMap<String, _> = locked.into_iter().collect();

    let mut accepted: Vec<&OrderedMessage> = Vec::new();
    // Local devices to write entries for: (message index in `accepted`, device, kind).
    let mut deliveries: Vec<(usize, GroupMember, InboxEntryKind)> = Vec::new();
    let mut positions = Vec::new();
    let mut new_members: Vec<(&GroupId, Vec<GroupMember>)> = Vec::new();
    let mut leaving_now: Vec<(&GroupId, Vec<String>)> = Vec::new();
    for (id, batch) in &groups {
        let Some(group) = locked.get(id) else { continue };
        let mut last_seq = group.last_seq;
        let mut epoch = group.epoch;
        let mut current = members.remove(id).unwrap_or_default();
        let mut membership_changed = None;
        for message in batch {
            if message.seq <= last_seq {
                result.duplicates += 1;
                continue;
            }
            if message.seq > last_seq + 1 && !from_backfill {
                result.backfilling.push(message.group_id.clone());
                break;
            }
            let index = accepted.len();
            accepted.push(message);
            result.stored += 1;
            last_seq = message.seq;
            // Users of this server who left get nothing more of the group (`hub::leave`).
            let others = current
                .iter()
                .filter(local)
                .filter(|m| **m != message.sender && !group.leaving.iter().any(|u| u.as_str() == m.user_id.as_str()));
            deliveries.extend(others.map(|m| (index, m.clone(), InboxEntryKind::Message)));
            if message.kind == OrderedKind::Commit {
                epoch = message.epoch + 1;
                if let Some(after) = &message.members {
                    let before: BTreeSet<&GroupMember> = current.iter().collect();
                    // An external joiner (the sender) has its state already: no Welcome.
                    let added = after
                        .iter()
                        .filter(local)
                        .filter(|m| !before.contains(m) && **m != message.sender);
                    deliveries.extend(added.map(|m| (index, m.clone(), InboxEntryKind::Welcome)));
                    current = after.clone();
                    membership_changed = Some(&message.group_id);
                }
            }
        }
        if last_seq != group.last_seq {
            positions.push((id.as_str(), epoch, last_seq));
        }
        if let Some(group_id) = membership_changed {
            if !group.leaving.is_empty() {
                let still: Vec<String> = group
                    .leaving
                    .iter()
                    .filter(|u| current.iter().any(|m| m.user_id.as_str() == u.as_str()))
                    .cloned()
                    .collect();
                leaving_now.push((group_id, still));
            }
            new_members.push((group_id, current));
        }
    }

    // Submits are recognised again at the hub; here a message is once per (group, seq).
    let txn_ids: Vec<String> = accepted.iter().map(|m| format!("@{}", m.seq)).collect();
    let messages: Vec<NewMessage> = accepted
        .iter()
        .zip(&txn_ids)
        .map(|(m, txn_id)| NewMessage {
            group_id: &m.group_id,
            seq: m.seq,
            epoch: m.epoch,
            kind: match m.kind {
                OrderedKind::Commit => KIND_COMMIT,
                OrderedKind::Application => KIND_APPLICATION,
            },
            sender: &m.sender,
            txn_id,
            payload: m.payload.as_slice(),
            welcome: m.welcome.as_ref().map(|w| w.as_slice()),
            members: m.members.as_deref(),
            sent_at: from_ms(m.sent_at_ms).unwrap_or_else(OffsetDateTime::now_utc),
            expires_at: m.expires_at_ms.and_then(from_ms),
        })
        .collect();
    let entries: Vec<NewEntry> = deliveries
        .iter()
        .map(|(index, member, kind)| {
            let message = accepted[*index];
            let recipient = Recipient {
                localpart: member.user_id.localpart(),
                device_id: &member.device_id,
            };
            NewEntry {
                expires_at: message.expires_at_ms.and_then(from_ms),
                ..recipient.entry(*kind, &message.group_id, message.seq)
            }
        })
        .collect();
    for (group_id, members) in &new_members {
        store::groups::replace_members(&tx, group_id, &members.iter().cloned().collect()).await?;
    }
    for (group_id, leaving) in &leaving_now {
        store::groups::set_leaving(&tx, group_id, leaving).await?;
    }
    let (_, _, appended) = tokio::try_join!(
        store::groups::insert_messages(&tx, &messages),
        store::groups::set_positions(&tx, &positions),
        store::inbox::append(&tx, &entries),
    )?;
    tx.commit().await?;
    app.inbox_waker.deliver(fresh_entries(&accepted, &deliveries, appended));
    let received = &app.metrics.federation_messages_received;
    received.with_label_values(&["stored"]).inc_by(result.stored);
    received.with_label_values(&["duplicate"]).inc_by(result.duplicates);
    received.with_label_values(&["ignored"]).inc_by(result.ignored);
    if !result.backfilling.is_empty() {
        received.with_label_values(&["after_gap"]).inc();
    }
    Ok(result)
}

/// The entries just written, for the devices' open streams (which then need not read
/// them back from the database).
fn fresh_entries(
    accepted: &[&OrderedMessage],
    recipients: &[(usize, GroupMember, InboxEntryKind)],
    appended: Vec<Appended>,
) -> Vec<FreshEntry> {
    let messages: HashMap<(&str, i64), &OrderedMessage> =
        accepted.iter().map(|m| ((m.group_id.as_str(), m.seq), *m)).collect();
    let kinds: HashMap<(&str, &str, i64), InboxEntryKind> = recipients
        .iter()
        .map(|(i, member, kind)| {
            (
                (
                    member.device_id.as_str(),
                    accepted[*i].group_id.as_str(),
                    accepted[*i].seq,
                ),
                *kind,
            )
        })
        .collect();
    let mut fresh: Vec<FreshEntry> = appended
        .into_iter()
        .filter_map(|a| {
            let message = messages.get(&(a.group_id.as_str(), a.seq))?;
            let kind = *kinds.get(&(a.device_id.as_str(), a.group_id.as_str(), a.seq))?;
            let payload = match kind {
                InboxEntryKind::Welcome => message.welcome.clone(),
                _ => Some(message.payload.clone()),
            };
            Some(FreshEntry {
                entry: InboxEntry {
                    cursor: a.position,
                    kind,
                    group_id: message.group_id.clone(),
                    seq: message.seq,
                    epoch: message.epoch,
                    sender: message.sender.clone(),
                    payload,
                    sent_at: from_ms(message.sent_at_ms)?,
                    expires_at: message.expires_at_ms.and_then(from_ms),
                },
                device_id: a.device_id,
            })
        })
        .collect();
    fresh.sort_unstable_by_key(|f| f.entry.cursor);
    fresh
}
