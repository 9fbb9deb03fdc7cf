//! The JSON shapes of specs/local-ui-api.md, built from the SDK's state.

use std::collections::{BTreeMap, BTreeSet};

use parley_sdk::messenger::{GroupOverview, HistoryMessage, Messenger, MessengerError, SafetyNumber, Verification};
use parley_specs::groups_api::ServerDelivery;
use parley_specs::{GroupId, UserId};
use serde::Serialize;
use serde_json::{Value, json};

use super::delivery::Deliveries;

const CIPHERSUITE: &str = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

/// `unverified`, `verified` or `changed`.
pub(crate) fn verification_word(v: &Verification) -> &'static str {
    match v {
        Verification::Unverified => "unverified",
        Verification::Verified { .. } => "verified",
        Verification::Changed { .. } => "changed",
    }
}

/// A message object, with its delivery state given how many other member devices the
/// conversation has and how far each member server has received it (`servers`, the last
/// known positions; own messages only).
pub(crate) fn message(me: &UserId, m: &HistoryMessage, other_devices: usize, servers: &[ServerDelivery]) -> Value {
    let mine = m.sender == *me;
    let delivered = mine && other_devices > 0 && m.delivered_to.len() >= other_devices;
    let mut view = json!({
        "seq": m.seq,
        "sender": m.sender,
        "sender_device": m.sender_device,
        "mine": m.sender == *me,
        "sent_at": rfc3339(m.sent_at),
        "text": m.text,
        "expires_at": m.expires_at.map(rfc3339),
        "delivery": {
            "state": if delivered { "delivered" } else { "sent" },
            "delivered_to": m.delivered_to,
            "devices": other_devices,
        },
    });
    if mine {
        let servers: Vec<Value> = servers
            .iter()
            .map(|s| json!({"server": s.server, "delivered": m.seq <= s.delivered_up_to}))
            .collect();
        view["delivery"]["servers"] = Value::Array(servers);
    }
    view
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// How many devices other than this one are in the group (0 when not a member).
pub(crate) async fn other_devices(m: &mut Messenger, group_id: &GroupId) -> usize {
    m.members(group_id)
        .await
        .map(|d| d.iter().filter(|d| !d.this_device).count())
        .unwrap_or(0)
}

/// The conversation objects of `only` (or all), most recent first.
pub(crate) async fn conversations(
    m: &mut Messenger,
    only: Option<&GroupId>,
    deliveries: &Deliveries,
) -> Result<Vec<Value>, MessengerError> {
    let overviews: Vec<GroupOverview> = m
        .groups()
        .await?
        .into_iter()
        .filter(|g| only.is_none_or(|id| &g.group_id == id))
        .collect();
    if let Some(id) = only
        && overviews.is_empty()
    {
        return Err(MessengerError::UnknownGroup(id.clone()));
    }
    let me = m.user_id().clone();
    let mut verifications: BTreeMap<UserId, Verification> = BTreeMap::new();
    let mut out = Vec::new();
    for overview in overviews {
        let members = if overview.member {
            m.members(&overview.group_id).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let users: BTreeSet<UserId> = members.iter().map(|d| d.user_id.clone()).filter(|u| u != &me).collect();
        for user in users {
            if let std::collections::btree_map::Entry::Vacant(slot) = verifications.entry(user) {
                let v = m.verification(slot.key()).await?;
                slot.insert(v);
            }
        }
        let word = |u: &UserId| {
            if u == &me {
                "verified"
            } else {
                verifications.get(u).map_or("unverified", verification_word)
            }
        };
        let others: Vec<&UserId> = members.iter().map(|d| &d.user_id).filter(|u| *u != &me).collect();
        let changed: BTreeSet<&UserId> = others.iter().copied().filter(|u| word(u) == "changed").collect();
        let all_verified = !others.is_empty() && others.iter().all(|u| word(u) == "verified");
        let other_devices = members.iter().filter(|d| !d.this_device).count();
        let history = m.history(&overview.group_id, None).await?;
        let positions = deliveries.positions(&overview.group_id);
        let last = history.last().map(|msg| message(&me, msg, other_devices, &positions));
        let member_views: Vec<Value> = members
            .iter()
            .map(|d| {
                json!({
                    "user_id": d.user_id,
                    "device_id": d.device_id,
                    "this_device": d.this_device,
                    "verification": word(&d.user_id),
                })
            })
            .collect();
        out.push((
            overview.last_message_at,
            json!({
                "group_id": overview.group_id,
                "member": overview.member,
                "epoch": overview.epoch,
                "members": member_views,
                "unread": overview.unread,
                "last_message": last,
                "timer_secs": overview.timer_secs,
                "encryption": {
                    "protocol": "MLS",
                    "ciphersuite": CIPHERSUITE,
                    "epoch": overview.epoch,
                    "all_verified": all_verified,
                    "changed_contacts": changed,
                },
            }),
        ));
    }
    // Most recent first; conversations without messages last.
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out.into_iter().map(|(_, v)| v).collect())
}

/// One conversation object.
pub(crate) async fn conversation(
    m: &mut Messenger,
    group_id: &GroupId,
    deliveries: &Deliveries,
) -> Result<Value, MessengerError> {
    conversations(m, Some(group_id), deliveries)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))
}

#[derive(Serialize)]
struct DeviceView<'a> {
    device_id: &'a str,
    signature_key: &'a str,
}

/// The contact object of a safety number.
pub(crate) fn contact(number: &SafetyNumber) -> Value {
    let (added, removed) = match &number.verification {
        Verification::Changed { added, removed, .. } => (added.clone(), removed.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let devices: Vec<DeviceView<'_>> = number
        .contact_devices
        .iter()
        .map(|d| DeviceView {
            device_id: d.device_id.as_str(),
            signature_key: &d.signature_key,
        })
        .collect();
    json!({
        "user_id": number.contact,
        "safety_number": number.groups().join(" "),
        "verification": verification_word(&number.verification),
        "devices": devices,
        "added": added,
        "removed": removed,
    })
}
