//! How far each member server has received a conversation (the hub's answer to
//! `GET /client/v1/groups/{group_id}/delivery`): fetched when a conversation's messages are
//! listed, and refreshed by the receive loop for conversations with own messages not yet
//! on every member server, at most one request per conversation at a time.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use parley_sdk::Client;
use parley_specs::groups_api::{GroupDelivery, ServerDelivery};
use parley_specs::{ErrorCode, GroupId};

use super::api::ServerEvent;

/// How often a conversation with own messages not yet everywhere is asked again.
pub(crate) const REFRESH: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Known {
    /// The last answer per conversation.
    positions: HashMap<GroupId, Vec<ServerDelivery>>,
    /// Conversations with an own message (the highest such seq) not yet on every server.
    pending: HashMap<GroupId, i64>,
    in_flight: HashSet<GroupId>,
    last_asked: HashMap<GroupId, Instant>,
}

/// The delivery positions `parley ui` knows.
#[derive(Default)]
pub(crate) struct Deliveries(Mutex<Known>);

fn everywhere(servers: &[ServerDelivery], seq: i64) -> bool {
    !servers.is_empty() && servers.iter().all(|s| s.delivered_up_to >= seq)
}

impl Deliveries {
    fn known(&self) -> MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last known positions of the conversation's servers (none before the first answer).
    pub(crate) fn positions(&self, group: &GroupId) -> Vec<ServerDelivery> {
        self.known().positions.get(group).cloned().unwrap_or_default()
    }

    /// Stores an answer; a partial one (the hub unreachable) only updates the servers it names.
    pub(crate) fn record(&self, answer: GroupDelivery) {
        let mut known = self.known();
        let group = answer.group_id;
        let servers = if answer.partial {
            let mut merged = known.positions.get(&group).cloned().unwrap_or_default();
            for server in answer.servers {
                match merged.iter_mut().find(|s| s.server == server.server) {
                    Some(old) => old.delivered_up_to = old.delivered_up_to.max(server.delivered_up_to),
                    None => merged.push(server),
                }
            }
            merged.sort_by(|a, b| a.server.as_str().cmp(b.server.as_str()));
            merged
        } else {
            answer.servers
        };
        if !answer.partial
            && let Some(seq) = known.pending.get(&group).copied()
            && everywhere(&servers, seq)
        {
            known.pending.remove(&group);
        }
        known.positions.insert(group, servers);
    }

    /// An own message (sent here or by another device of this user): watched until every
    /// member server has it.
    pub(crate) fn own_message(&self, group: &GroupId, seq: i64) {
        let mut known = self.known();
        let reached = known.positions.get(group).is_some_and(|s| everywhere(s, seq));
        if !reached {
            let pending = known.pending.entry(group.clone()).or_insert(seq);
            *pending = (*pending).max(seq);
        }
    }

    /// Forgets a conversation (left, or no longer readable).
    pub(crate) fn forget(&self, group: &GroupId) {
        let mut known = self.known();
        known.positions.remove(group);
        known.pending.remove(group);
        known.last_asked.remove(group);
    }

    /// Conversations to ask about now, marked in flight until `finished`.
    fn due(&self, now: Instant) -> Vec<GroupId> {
        let mut known = self.known();
        let due: Vec<GroupId> = known
            .pending
            .keys()
            .filter(|g| !known.in_flight.contains(*g))
            .filter(|g| {
                known
                    .last_asked
                    .get(*g)
                    .is_none_or(|at| now.duration_since(*at) >= REFRESH)
            })
            .cloned()
            .collect();
        for group in &due {
            known.in_flight.insert(group.clone());
            known.last_asked.insert(group.clone(), now);
        }
        due
    }

    fn finished(&self, group: &GroupId) {
        self.known().in_flight.remove(group);
    }

    /// Starts a request for each conversation due (in the background); each answer is
    /// stored and handed to `emit` as a `delivery` event.
    pub(crate) fn refresh(
        self: &std::sync::Arc<Self>,
        client: &Client,
        emit: impl Fn(ServerEvent) + Clone + Send + 'static,
    ) {
        for group in self.due(Instant::now()) {
            let deliveries = self.clone();
            let client = client.clone();
            let emit = emit.clone();
            tokio::spawn(async move {
                match client.group_delivery(&group).await {
                    Ok(answer) => {
                        deliveries.record(answer);
                        emit(event(&group, &deliveries.positions(&group)));
                    }
                    Err(e) if e.code() == Some(ErrorCode::NotAMember) => deliveries.forget(&group),
                    Err(_) => {}
                }
                deliveries.finished(&group);
            });
        }
    }
}

/// The `delivery` event.
pub(crate) fn event(group: &GroupId, servers: &[ServerDelivery]) -> ServerEvent {
    ServerEvent::Delivery {
        group_id: group.clone(),
        servers: servers.iter().cloned().map(Into::into).collect(),
    }
}
