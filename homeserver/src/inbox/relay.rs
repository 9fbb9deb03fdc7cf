//! Wake-ups across the processes of one domain, through PostgreSQL `LISTEN/NOTIFY`.
//!
//! A process that writes inbox entries wakes its own readers directly and announces
//! the devices on the `parley_inbox` channel, with the entries themselves when they are
//! small and another process listens: every other process hands those to its readers of
//! the devices, which push them without reading the database (and read it for anything
//! else). A notification is `<origin> <device> <device> …`, then, if it carries entries,
//! a newline and their JSON; a process that only knows the device list reads it as
//! before. Notifications are sent after the entries are committed, from one dedicated
//! connection, outside the writing transaction: a NOTIFY inside it would serialize the
//! commits of all writers (PostgreSQL takes a global lock from NOTIFY to commit). An
//! entry is only ever taken from a notification once committed, and a reader checks it
//! follows on from what it sent. A notification lost in a crash between
//! commit and NOTIFY, or while the connection is down, only delays: every
//! `limits.inbox_recheck_secs` each process checks all its readers' devices in one query
//! (`inbox::recheck_forever`), and everyone is woken after a reconnect.
//!
//! A revoked device travels on the same channel as `!<device>`: every process ends its
//! readers of that device at once (a lost notification leaves the reader open until the
//! next re-check finds the device gone, within `limits.inbox_recheck_secs`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::inbox::{Announcement, FreshEntry, InboxWaker, REVOKED_MARK};
use crate::metrics::Metrics;

const CHANNEL: &str = "parley_inbox";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
/// The relay's connections call themselves this, so each can count the others.
const APPLICATION_NAME: &str = "parley-inbox-relay";
/// How often the relay counts the other processes listening; one that starts is handed
/// entries from then on (its readers read the database meanwhile).
const PEER_COUNT_INTERVAL: Duration = Duration::from_secs(5);
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Relays wake-ups between this process and the others until the process ends.
pub async fn relay_forever(database_url: String, waker: Arc<InboxWaker>, metrics: Arc<Metrics>) {
    let Some(mut outgoing) = waker.announce_to_other_processes() else {
        tracing::error!("inbox wake-ups are already relayed; not starting a second relay");
        return;
    };
    let origin = format!("{:016x}", rand::random::<u64>());
    let mut wait = RECONNECT_MIN;
    loop {
        let result = relay(&database_url, &origin, &waker, &metrics, &mut outgoing, &mut wait).await;
        metrics.wakeup_relay_connected.set(0);
        if let Err(error) = result {
            tracing::warn!(%error, retry_in_ms = wait.as_millis(), "cross-process wake-ups interrupted; readers re-check the database meanwhile");
        }
        // Nobody else hears what is announced while disconnected: drop it.
        let reconnect_at = tokio::time::Instant::now() + wait;
        while let Ok(Some(_)) = tokio::time::timeout_at(reconnect_at, outgoing.recv()).await {}
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database.url: {0}")]
    Url(String),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// One connection's life: LISTEN, then relay both ways until it fails.
async fn relay(
    database_url: &str,
    origin: &str,
    waker: &InboxWaker,
    metrics: &Metrics,
    outgoing: &mut mpsc::UnboundedReceiver<Announcement>,
    wait: &mut Duration,
) -> Result<(), RelayError> {
    // The URL was checked when the pool was made from it.
    let (mut config, tls) = crate::pg_tls::connection_config(database_url).map_err(RelayError::Url)?;
    config.application_name(APPLICATION_NAME);
    let (client, mut connection) = config.connect(tls).await?;
    let (notifications, mut incoming) = mpsc::unbounded_channel();
    // The connection delivers notifications only while it is polled.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = notifications.send(Ok(n.payload().to_owned()));
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = notifications.send(Err(error));
                    return;
                }
            }
        }
    });
    let _abort_driver = AbortOnDrop(driver);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    metrics.wakeup_relay_connected.set(1);
    *wait = RECONNECT_MIN;
    // Whatever was announced before this LISTEN was missed.
    waker.wake_everyone_here();
    let notify = client
        .prepare("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .await?;
    // Entries travel only when another process listens: alone, a process would encode
    // every entry for nobody.
    let others = client
        .prepare(
            "SELECT count(*) FROM pg_stat_activity
             WHERE application_name = $1 AND datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await?;
    let mut count_peers = tokio::time::interval(PEER_COUNT_INTERVAL);
    count_peers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = count_peers.tick() => {
                let listening: i64 = client.query_one(&others, &[&APPLICATION_NAME]).await?.get(0);
                metrics.wakeup_relay_peers.set(listening);
                waker.relay_entries(listening > 0);
            }
            payload = incoming.recv() => {
                let Some(payload) = payload else {
                    return Ok(()); // the server closed the connection
                };
                if let Some((devices, entries)) = from_others(&payload?, origin) {
                    metrics.wakeup_notifications.with_label_values(&["received"]).inc();
                    metrics.wakeup_relayed_entries.with_label_values(&["received"]).inc_by(entries.len() as u64);
                    waker.deliver_here(entries);
                    let (revoked, woken): (Vec<String>, Vec<String>) =
                        devices.into_iter().partition(|d| d.starts_with(REVOKED_MARK));
                    let revoked: Vec<String> =
                        revoked.iter().map(|d| d.trim_start_matches(REVOKED_MARK).to_owned()).collect();
                    waker.wake_here(&woken);
                    waker.revoke_here(&revoked);
                }
            }
            Some(first) = outgoing.recv() => {
                // Everything announced meanwhile goes out in the same round trip.
                let mut announced = vec![first];
                while let Ok(more) = outgoing.try_recv() {
                    announced.push(more);
                }
                let (payloads, carried) = payloads(origin, announced);
                metrics.wakeup_notifications.with_label_values(&["sent"]).inc_by(payloads.len() as u64);
                metrics.wakeup_relayed_entries.with_label_values(&["sent"]).inc_by(carried);
                client.execute(&notify, &[&CHANNEL, &payloads]).await?;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The notifications for what was announced: entries with the devices they are for,
/// then the other devices alone, split so no payload exceeds PostgreSQL's limit. An entry
/// too large for a notification of its own only wakes its device. Also returns how many
/// entries the notifications carry.
fn payloads(origin: &str, announced: Vec<Announcement>) -> (Vec<String>, u64) {
    let mut payloads = Vec::new();
    let mut with_entries: Vec<String> = Vec::new();
    let mut batch = EntryPayload::default();
    for entry in announced.iter().flat_map(|a| &a.entries) {
        let Ok(json) = serde_json::to_string(entry) else {
            continue;
        };
        if batch.would_exceed(origin, &entry.device_id, &json) {
            payloads.extend(std::mem::take(&mut batch).finish(origin));
        }
        if batch.would_exceed(origin, &entry.device_id, &json) {
            continue; // alone too large: its device is woken below
        }
        batch.push(&entry.device_id, json);
        with_entries.push(entry.device_id.clone());
    }
    let carried = with_entries.len() as u64;
    payloads.extend(batch.finish(origin));
    with_entries.sort_unstable();
    with_entries.dedup();
    let mut devices: Vec<String> = announced.into_iter().flat_map(|a| a.devices).collect();
    devices.sort_unstable();
    devices.dedup();
    devices.retain(|d| with_entries.binary_search(d).is_err());
    payloads.extend(device_payloads(origin, &devices));
    (payloads, carried)
}

/// `"<origin> <device> …\n[<entry>,…]"` under construction.
#[derive(Default)]
struct EntryPayload {
    devices: Vec<String>,
    entries: Vec<String>,
    len: usize,
}

impl EntryPayload {
    fn would_exceed(&self, origin: &str, device: &str, json: &str) -> bool {
        let head = if self.devices.last().is_some_and(|d| d == device) {
            0
        } else {
            1 + device.len()
        };
        // origin, "\n[", the entries with their commas, "]"
        origin.len() + 2 + self.len + head + json.len() + 2 > MAX_PAYLOAD
    }

    fn push(&mut self, device: &str, json: String) {
        if self.devices.last().is_none_or(|d| d != device) {
            self.len += 1 + device.len();
            self.devices.push(device.to_owned());
        }
        self.len += json.len() + 1;
        self.entries.push(json);
    }

    fn finish(self, origin: &str) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let mut payload = String::with_capacity(origin.len() + self.len + 3);
        payload.push_str(origin);
        for device in &self.devices {
            payload.push(' ');
            payload.push_str(device);
        }
        payload.push_str("\n[");
        payload.push_str(&self.entries.join(","));
        payload.push(']');
        Some(payload)
    }
}

/// `"<origin> <device> <device> …"`, split so no payload exceeds PostgreSQL's limit.
fn device_payloads(origin: &str, devices: &[String]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = origin.to_owned();
    for device in devices {
        if current.len() + 1 + device.len() > MAX_PAYLOAD && current.len() > origin.len() {
            payloads.push(std::mem::replace(&mut current, origin.to_owned()));
        }
        current.push(' ');
        current.push_str(device);
    }
    if current.len() > origin.len() {
        payloads.push(current);
    }
    payloads
}

/// The devices a notification from another process names, and the entries it carries;
/// `None` for our own. Entries that do not parse are left to the database read their
/// device's wake-up causes.
fn from_others(payload: &str, origin: &str) -> Option<(Vec<String>, Vec<FreshEntry>)> {
    let (head, entries) = payload.split_once('\n').unwrap_or((payload, ""));
    let mut words = head.split_ascii_whitespace();
    if words.next()? == origin {
        return None;
    }
    let entries = match entries {
        "" => Vec::new(),
        json => serde_json::from_str(json).unwrap_or_default(),
    };
    Some((words.map(str::to_owned).collect(), entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::waker::{MAX_RELAYED_PAYLOAD, test_entry};

    fn devices_only(devices: &[String]) -> Vec<Announcement> {
        vec![Announcement {
            devices: devices.to_vec(),
            entries: Vec::new(),
        }]
    }

    fn fresh(device: &str, cursor: i64, payload_len: usize) -> FreshEntry {
        FreshEntry {
            device_id: device.into(),
            entry: test_entry(cursor, Some(vec![7; payload_len])),
        }
    }

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_device_once() {
        let devices: Vec<String> = (0..2_000).map(|i| format!("DEVICE{i:020}")).collect();
        let (split, carried) = payloads("0123456789abcdef", devices_only(&devices));
        assert_eq!(carried, 0);
        assert!(split.len() > 1);
        assert!(split.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let relayed: Vec<String> = split
            .iter()
            .flat_map(|p| from_others(p, "another").unwrap().0)
            .collect();
        assert_eq!(relayed, devices);
        assert!(payloads("o", devices_only(&[])).0.is_empty());
    }

    #[test]
    fn small_entries_travel_with_their_devices_and_large_ones_only_wake() {
        let devices: Vec<String> = (0..40).map(|i| format!("D{i}")).collect();
        let mut entries: Vec<FreshEntry> = devices.iter().map(|d| fresh(d, 5, 300)).collect();
        entries.push(fresh("BIG", 9, MAX_RELAYED_PAYLOAD + 4_000));
        let mut named = devices.clone();
        named.push("BIG".into());
        named.push("WOKEN".into());
        let announced = vec![Announcement {
            devices: named,
            entries,
        }];
        let (split, carried) = payloads("me", announced);
        assert_eq!(carried, 40);
        assert!(split.len() > 2, "40 entries of 300 bytes need several notifications");
        assert!(split.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let received: Vec<(Vec<String>, Vec<FreshEntry>)> =
            split.iter().map(|p| from_others(p, "you").unwrap()).collect();
        let carried: Vec<String> = received
            .iter()
            .flat_map(|(_, e)| e.iter().map(|e| e.device_id.clone()))
            .collect();
        assert_eq!(carried, devices, "every small entry, in order");
        assert!(received.iter().flat_map(|(_, e)| e).all(|e| e.entry.cursor == 5));
        let mut woken: Vec<String> = received.into_iter().flat_map(|(d, _)| d).collect();
        woken.sort();
        let mut expected = devices.clone();
        expected.extend(["BIG".to_owned(), "WOKEN".to_owned()]);
        expected.sort();
        assert_eq!(woken, expected, "each device named once");
    }

    #[test]
    fn our_own_notifications_are_ignored_and_a_device_list_alone_still_reads() {
        assert!(from_others("me D1 D2", "me").is_none());
        let (devices, entries) = from_others("you D1 D2", "me").unwrap();
        assert_eq!(devices, vec!["D1".to_owned(), "D2".to_owned()]);
        assert!(entries.is_empty());
        assert!(from_others("", "me").is_none());
        let (devices, entries) = from_others("you D1\nnot json", "me").unwrap();
        assert_eq!(
            (devices, entries.len()),
            (vec!["D1".to_owned()], 0),
            "a bad tail still wakes"
        );
    }
}
