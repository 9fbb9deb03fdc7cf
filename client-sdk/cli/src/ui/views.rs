//! The local API's objects ([`api`](super::api)) built from the SDK's state.

use std::collections::{BTreeMap, BTreeSet};

use parley_sdk::messenger::{GroupOverview, HistoryMessage, Messenger, MessengerError, SafetyNumber, Verification};
use parley_specs::groups_api::ServerDelivery;
use parley_specs::{GroupId, UserId};

use super::api::{
    Contact, ContactDevice, Conversation, Delivery, DeliveryState, Encryption, GroupSettingsView, Member, Message,
    Reaction, ServerReceived, VerificationState,
};
use super::delivery::Deliveries;

const CIPHERSUITE: &str = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519";

impl From<&Verification> for VerificationState {
    fn from(verification: &Verification) -> Self {
        match verification {
            Verification::Unverified => Self::Unverified,
            Verification::Verified { .. } => Self::Verified,
            Verification::Changed { .. } => Self::Changed,
        }
    }
}

/// A message object, with its delivery state given how many other member devices the
/// conversation has and how far each member server has received it (`servers`, the last
/// known positions; own messages only).
pub(crate) fn message(me: &UserId, m: &HistoryMessage, other_devices: usize, servers: &[ServerDelivery]) -> Message {
    let mine = m.sender == *me;
    let delivered = mine && other_devices > 0 && m.delivered_to.len() >= other_devices;
    Message {
        seq: m.seq,
        sender: m.sender.clone(),
        sender_device: m.sender_device.clone(),
        mine,
        sent_at: m.sent_at,
        text: m.text.clone(),
        expires_at: m.expires_at,
        reply_to: m.reply_to,
        reactions: reactions(me, m),
        edited_at: m.edited_at,
        attachment: m.attachment.as_ref().map(|a| crate::ui::api::Attachment {
            name: a.name.clone(),
            size: a.size,
            media_type: a.media_type.clone(),
        }),
        delivery: Delivery {
            state: if delivered {
                DeliveryState::Delivered
            } else {
                DeliveryState::Sent
            },
            delivered_to: m.delivered_to.iter().cloned().map(Into::into).collect(),
            devices: other_devices,
            servers: mine.then(|| {
                servers
                    .iter()
                    .map(|s| ServerReceived {
                        server: s.server.clone(),
                        delivered: m.seq <= s.delivered_up_to,
                    })
                    .collect()
            }),
        },
    }
}

/// The message's reactions, most used first.
fn reactions(me: &UserId, m: &HistoryMessage) -> Vec<Reaction> {
    let mut out: Vec<Reaction> = m
        .reactions
        .iter()
        .map(|(emoji, users)| Reaction {
            emoji: emoji.clone(),
            count: users.len(),
            mine: users.contains(me),
            users: users.iter().cloned().collect(),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.emoji.cmp(&b.emoji)));
    out
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
) -> Result<Vec<Conversation>, MessengerError> {
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
    let mut verifications: BTreeMap<UserId, VerificationState> = BTreeMap::new();
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
                slot.insert((&v).into());
            }
        }
        let state = |u: &UserId| {
            if u == &me {
                VerificationState::Verified
            } else {
                verifications.get(u).copied().unwrap_or(VerificationState::Unverified)
            }
        };
        let others: Vec<&UserId> = members.iter().map(|d| &d.user_id).filter(|u| *u != &me).collect();
        let changed: BTreeSet<&UserId> = others
            .iter()
            .copied()
            .filter(|u| state(u) == VerificationState::Changed)
            .collect();
        let all_verified = !others.is_empty() && others.iter().all(|u| state(u) == VerificationState::Verified);
        let other_devices = members.iter().filter(|d| !d.this_device).count();
        let history = m.history(&overview.group_id, None).await?;
        let positions = deliveries.positions(&overview.group_id);
        let last_message = history.last().map(|msg| message(&me, msg, other_devices, &positions));
        let members = members
            .iter()
            .map(|d| Member {
                user_id: d.user_id.clone(),
                device_id: d.device_id.clone(),
                this_device: d.this_device,
                verification: state(&d.user_id),
            })
            .collect();
        out.push((
            overview.last_message_at,
            Conversation {
                group_id: overview.group_id,
                member: overview.member,
                epoch: overview.epoch,
                members,
                unread: overview.unread,
                last_message,
                timer_secs: overview.timer_secs,
                refused: overview.refused,
                settings: overview.settings.map(|s| {
                    Box::new(GroupSettingsView {
                        name: s.name,
                        topic: s.topic,
                        name_known: s.name_known,
                        timer_secs: s.timer_secs,
                        admins: s.admins.iter().map(ToString::to_string).collect(),
                        is_admin: s.is_admin,
                    })
                }),
                encryption: Encryption {
                    protocol: "MLS".to_owned(),
                    ciphersuite: CIPHERSUITE.to_owned(),
                    epoch: overview.epoch,
                    all_verified,
                    changed_contacts: changed.into_iter().cloned().collect(),
                },
            },
        ));
    }
    // Most recent first; conversations without messages last.
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// One conversation object.
pub(crate) async fn conversation(
    m: &mut Messenger,
    group_id: &GroupId,
    deliveries: &Deliveries,
) -> Result<Conversation, MessengerError> {
    conversations(m, Some(group_id), deliveries)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| MessengerError::UnknownGroup(group_id.clone()))
}

/// The contact object of a safety number.
pub(crate) fn contact(number: &SafetyNumber) -> Contact {
    let (added, removed) = match &number.verification {
        Verification::Changed { added, removed, .. } => (
            added.iter().map(ContactDevice::from).collect(),
            removed.iter().map(ContactDevice::from).collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    Contact {
        user_id: number.contact.clone(),
        safety_number: number.groups().join(" "),
        verification: (&number.verification).into(),
        devices: number.contact_devices.iter().map(ContactDevice::from).collect(),
        added,
        removed,
    }
}
