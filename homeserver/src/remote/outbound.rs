//! Sending group messages to the other servers that have members in them.
//!
//! The hub queues a message for each such server in the transaction that accepts it
//! (`federation_queue`). Here, one task per destination takes the oldest queued messages,
//! sends them as one signed transaction, and deletes them once the destination answered
//! 2xx, so a crash at any point means a resend, never a loss; the follower stores each
//! (group, seq) once. While it sends, the task holds the destination's row lock (`FOR NO
//! KEY UPDATE SKIP LOCKED`): one sender per destination across all processes, which keeps
//! its messages in order. A failed send backs the destination off exponentially, with
//! jitter, up to a cap; an authenticated request from it ends the backoff.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_specs::ServerName;
use parley_specs::endpoints::federation::{SEND_TRANSACTION, VERSION};
use rand::Rng as _;
use tokio::sync::Notify;

use super::ordered::{ordered, signed};
use super::{MAX_SMALL_ANSWER_BYTES, Remote, excerpt};
use crate::error::ApiError;
use crate::store;

/// How often due destinations are looked up in the database even without a kick: picks
/// up the end of a backoff, and messages queued by another process.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Destinations with newly queued messages, handed from writers to the sending loop.
#[derive(Default)]
pub struct OutboundKicks {
    kicked: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// Destinations this process saw fail; a request from one of them ends its backoff.
    backing_off: Mutex<BTreeSet<String>>,
}

impl OutboundKicks {
    /// Messages were queued (and committed) for these destinations.
    pub fn kick(&self, destinations: impl IntoIterator<Item = String>) {
        let mut kicked = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
        let before = kicked.len();
        kicked.extend(destinations);
        if kicked.len() > before {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.kicked.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_backing_off(&self, destination: &str, backing_off: bool) {
        let mut set = self.backing_off.lock().unwrap_or_else(|p| p.into_inner());
        if backing_off {
            set.insert(destination.to_owned());
        } else {
            set.remove(destination);
        }
    }
}

/// `origin` just proved it is up: send to it now rather than when its backoff ends.
pub async fn peer_is_alive(remote: &Remote, origin: &ServerName) {
    let was_backing_off = remote
        .outbound
        .backing_off
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(origin.as_str());
    if !was_backing_off {
        return;
    }
    let reset = async {
        let db = remote.pool.get().await?;
        store::federation::reset_backoff(&db, origin.as_str()).await?;
        Ok::<_, ApiError>(())
    };
    match reset.await {
        Ok(()) => remote.outbound.kick([origin.to_string()]),
        Err(error) => tracing::warn!(%origin, %error, "cannot end the backoff of a server that is back"),
    }
}

/// Per destination being sent to by this process: whether it was kicked meanwhile.
type Senders = Arc<Mutex<HashMap<String, bool>>>;

/// Runs the sending loop of this process until it is stopped.
pub async fn send_forever(remote: Arc<Remote>) {
    tokio::spawn(announce_return(remote.clone()));
    let senders: Senders = Arc::default();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = remote.outbound.wake.notified() => {}
            _ = poll.tick() => match due(&remote).await {
                Ok(due) => remote.outbound.kick(due),
                Err(error) => tracing::warn!(%error, "cannot look up federation destinations; retrying"),
            },
        }
        for destination in remote.outbound.take() {
            let mut running = senders.lock().unwrap_or_else(|p| p.into_inner());
            match running.get_mut(&destination) {
                Some(kicked) => *kicked = true,
                None => {
                    running.insert(destination.clone(), false);
                    tokio::spawn(send_to(remote.clone(), senders.clone(), destination));
                }
            }
        }
    }
}

/// Tells the hubs of the groups this server follows that it is up, with one signed
/// request each: a hub that was backing off from it sends what it queued at once, instead
/// of when its backoff (up to `retry_max_secs`) ends.
async fn announce_return(remote: Arc<Remote>) {
    let hubs = async {
        let db = remote.pool.get().await?;
        Ok::<_, ApiError>(store::federation::followed_hubs(&db).await?)
    };
    let hubs = match hubs.await {
        Ok(hubs) => hubs,
        Err(error) => {
            tracing::warn!(%error, "cannot list the hubs this server follows");
            return;
        }
    };
    for hub in hubs.iter().filter_map(|h| ServerName::parse(h).ok()) {
        match remote
            .call(
                reqwest::Method::GET,
                &hub,
                VERSION.path,
                Vec::new(),
                MAX_SMALL_ANSWER_BYTES,
            )
            .await
        {
            Ok((status, _)) if status.is_success() => tracing::info!(%hub, "told a hub this server is up"),
            Ok((status, _)) => tracing::warn!(%hub, %status, "a hub refused this server's hello"),
            Err(error) => tracing::info!(%hub, %error, "could not tell a hub this server is up"),
        }
    }
}

async fn due(remote: &Remote) -> Result<Vec<String>, ApiError> {
    let db = remote.pool.get().await?;
    Ok(store::federation::due_destinations(&db).await?)
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing more queued.
    Drained,
    /// Another process is sending to it, or it is backing off.
    NotNow,
    Failed,
}

async fn send_to(remote: Arc<Remote>, senders: Senders, destination: String) {
    loop {
        let outcome = match send_queued(&remote, &destination).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%destination, %error, "sending to a server failed before any request");
                Outcome::Failed
            }
        };
        let mut running = senders.lock().unwrap_or_else(|p| p.into_inner());
        match running.get_mut(&destination) {
            // Kicked while it drained: something was queued after its last look.
            Some(kicked) if *kicked && outcome == Outcome::Drained => *kicked = false,
            _ => {
                running.remove(&destination);
                return;
            }
        }
    }
}

/// Queued messages taken for one transaction.
struct Batch {
    /// Every queue id taken, messages that expired before they were sent included.
    ids: Vec<i64>,
    /// The transaction's JSON; `None` when none of its messages is left to send.
    body: Option<Vec<u8>>,
}

impl Batch {
    fn last_id(&self) -> i64 {
        self.ids.last().copied().unwrap_or_default()
    }
}

/// The next transaction for `destination`: its oldest messages queued after `after`.
/// `None` when there are none.
async fn next_batch(
    remote: &Remote,
    db: &impl store::Db,
    destination: &str,
    after: i64,
) -> Result<Option<Batch>, ApiError> {
    let limit = i64::try_from(remote.config.max_transaction_messages).unwrap_or(1);
    let queued = store::federation::queued(db, destination, after, limit).await?;
    if queued.is_empty() {
        return Ok(None);
    }
    Ok(Some(transaction(remote, queued)))
}

/// Reads and signs the transaction after `after` on a connection of its own, while the
/// current one is on its way: sending, not preparing, is then what paces a destination
/// that is catching up. Rows committed meanwhile with lower ids are picked up next round.
async fn prepare_next(remote: &Remote, destination: &str, after: i64) -> Option<Batch> {
    let db = remote.pool.get().await.ok()?;
    next_batch(remote, &db, destination, after).await.ok().flatten()
}

/// Sends transactions to `destination` until its queue is empty or a send fails.
async fn send_queued(remote: &Remote, destination: &str) -> Result<Outcome, ApiError> {
    let config = &remote.config;
    // Rows up to here were sent. One committed later with a lower id (another group's,
    // from a concurrent writer) waits for the next round, which starts from the lowest;
    // a group's own messages are queued in order under its lock.
    let mut sent_up_to = 0;
    let mut prepared: Option<Batch> = None;
    loop {
        let mut db = remote.pool.get().await?;
        let tx = db.transaction().await?;
        let Some(claimed) = store::federation::claim_destination(&tx, destination).await? else {
            return Ok(Outcome::NotNow);
        };
        let permitted = ServerName::parse(destination)
            .ok()
            .filter(|name| remote.policy.permits(name));
        let Some(server) = permitted else {
            let dropped = store::federation::drop_queue(&tx, destination).await?;
            tx.commit().await?;
            tracing::warn!(%destination, dropped, "not sending to a server this one does not federate with");
            return Ok(Outcome::Drained);
        };
        let batch = match prepared.take() {
            Some(batch) => batch,
            None => match next_batch(remote, &tx, destination, sent_up_to).await? {
                Some(batch) => batch,
                None => return Ok(Outcome::Drained),
            },
        };
        let (first_id, last_id) = (batch.ids.first().copied().unwrap_or_default(), batch.last_id());
        let Some(body) = batch.body else {
            // Only messages that expired (or cannot be read) before they were sent.
            store::federation::dequeue(&tx, &batch.ids).await?;
            tx.commit().await?;
            sent_up_to = last_id;
            continue;
        };
        let path = SEND_TRANSACTION.path_with(&[&format!("{first_id}-{last_id}")]);
        let started = Instant::now();
        // A full batch means a backlog: prepare the next one meanwhile. Otherwise the next
        // read, after this send, also finds what arrives during it.
        let backlog = batch.ids.len() >= config.max_transaction_messages;
        let (sent, next) = tokio::join!(send(remote, &server, &path, body), async {
            match backlog {
                true => prepare_next(remote, destination, last_id).await,
                false => None,
            }
        });
        match sent {
            Ok(()) => {
                remote
                    .metrics
                    .federation_send_latency
                    .observe(started.elapsed().as_secs_f64());
                // A dequeue lost in a crash only sends those messages again, and the
                // destination stores each once: no need to wait for the disk.
                store::commit_without_waiting_for_disk(&tx).await?;
                store::federation::dequeue(&tx, &batch.ids).await?;
                if claimed.failures > 0 {
                    store::federation::reset_backoff(&tx, destination).await?;
                }
                tx.commit().await?;
                sent_up_to = last_id;
                prepared = next;
                remote.outbound.set_backing_off(destination, false);
            }
            Err((reason, error)) => {
                let failures = claimed.failures.saturating_add(1);
                let retry_in = backoff(config.retry_initial_ms, config.retry_max_secs, failures);
                remote
                    .metrics
                    .federation_send_failures
                    .with_label_values(&[&reason])
                    .inc();
                store::federation::record_failure(&tx, destination, failures, millis(retry_in), &error).await?;
                tx.commit().await?;
                remote.outbound.set_backing_off(destination, true);
                tracing::warn!(%destination, failures, retry_in_ms = millis(retry_in), %error, "sending a transaction failed");
                return Ok(Outcome::Failed);
            }
        }
    }
}

/// A transaction of these queued messages, cut at the maximum transaction size.
fn transaction(remote: &Remote, queued: Vec<(i64, Option<store::groups::StoredMessage>)>) -> Batch {
    const HEAD: &[u8] = br#"{"messages":["#;
    let max_bytes = remote.config.max_transaction_bytes;
    let mut ids = Vec::with_capacity(queued.len());
    let mut body = HEAD.to_vec();
    let mut count = 0;
    for (id, stored) in queued {
        let Some(message) = stored.and_then(ordered) else {
            ids.push(id);
            continue;
        };
        let Ok(json) = serde_json::to_vec(&signed(remote, message)) else {
            ids.push(id);
            continue;
        };
        // The first message always goes, or one too large would block the queue; the
        // receiver's size limit is what refuses it then.
        if count > 0 && body.len() + json.len() + 3 > max_bytes {
            break;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&json);
        ids.push(id);
        count += 1;
    }
    body.extend_from_slice(b"]}");
    Batch {
        ids,
        body: (count > 0).then_some(body),
    }
}

/// Sends one transaction; on failure, the metric reason and the error.
async fn send(remote: &Remote, server: &ServerName, path: &str, body: Vec<u8>) -> Result<(), (String, String)> {
    let (status, answer) = remote
        .call(reqwest::Method::PUT, server, path, body, MAX_SMALL_ANSWER_BYTES)
        .await
        .map_err(|e| ("unreachable".to_owned(), e.message))?;
    if status.is_success() {
        return Ok(());
    }
    Err((
        format!("refused_{}", status.as_u16()),
        format!("{server} answered {status}: {}", excerpt(&answer)),
    ))
}

/// The wait before retrying after `failures` consecutive failures: doubling from
/// `initial_ms` up to `max_secs`, then a random point in its upper half, so servers that
/// failed together do not all retry at the same instant.
fn backoff(initial_ms: u64, max_secs: u64, failures: i32) -> Duration {
    let doublings = u32::try_from(failures.saturating_sub(1)).unwrap_or(0).min(30);
    let max = Duration::from_secs(max_secs).max(Duration::from_millis(1));
    let full = Duration::from_millis(initial_ms.max(1))
        .saturating_mul(1 << doublings)
        .min(max);
    let half = full / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        for failures in 1..40 {
            let wait = backoff(1_000, 600, failures);
            let full = Duration::from_millis(1_000 * (1u64 << (failures - 1).min(30))).min(Duration::from_secs(600));
            assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?} vs {full:?}");
        }
        assert!(backoff(1_000, 600, 0) <= Duration::from_secs(1));
    }
}
