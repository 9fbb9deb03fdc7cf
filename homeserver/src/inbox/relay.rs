//! Wake-ups across the processes of one domain, through PostgreSQL `LISTEN/NOTIFY`.
//!
//! A process that writes inbox entries wakes its own readers directly and announces
//! the devices on the `parley_inbox` channel; every other process wakes its readers of
//! those devices, which then read the database. Notifications are sent after the
//! entries are committed, from one dedicated connection, outside the writing
//! transaction: a NOTIFY inside it would serialize the commits of all writers (PostgreSQL
//! takes a global lock from NOTIFY to commit). A notification lost in a crash between
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

use crate::inbox::InboxWaker;
use crate::inbox::REVOKED_MARK;
use crate::metrics::Metrics;

const CHANNEL: &str = "parley_inbox";
/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;
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
    outgoing: &mut mpsc::UnboundedReceiver<Vec<String>>,
    wait: &mut Duration,
) -> Result<(), RelayError> {
    // The URL was checked when the pool was made from it.
    let (config, tls) = crate::pg_tls::connection_config(database_url).map_err(RelayError::Url)?;
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
    loop {
        tokio::select! {
            payload = incoming.recv() => {
                let Some(payload) = payload else {
                    return Ok(()); // the server closed the connection
                };
                if let Some(devices) = devices_from_others(&payload?, origin) {
                    metrics.wakeup_notifications.with_label_values(&["received"]).inc();
                    let (revoked, woken): (Vec<String>, Vec<String>) =
                        devices.into_iter().partition(|d| d.starts_with(REVOKED_MARK));
                    let revoked: Vec<String> =
                        revoked.iter().map(|d| d.trim_start_matches(REVOKED_MARK).to_owned()).collect();
                    waker.wake_here(&woken);
                    waker.revoke_here(&revoked);
                }
            }
            Some(mut devices) = outgoing.recv() => {
                // Everything announced meanwhile goes out in the same round trip.
                while let Ok(more) = outgoing.try_recv() {
                    devices.extend(more);
                }
                devices.sort_unstable();
                devices.dedup();
                let payloads = payloads(origin, &devices);
                metrics.wakeup_notifications.with_label_values(&["sent"]).inc_by(payloads.len() as u64);
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

/// `"<origin> <device> <device> …"`, split so no payload exceeds PostgreSQL's limit.
fn payloads(origin: &str, devices: &[String]) -> Vec<String> {
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

/// The devices named by a notification from another process; `None` for our own.
fn devices_from_others(payload: &str, origin: &str) -> Option<Vec<String>> {
    let mut words = payload.split_ascii_whitespace();
    if words.next()? == origin {
        return None;
    }
    Some(words.map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_device_once() {
        let devices: Vec<String> = (0..2_000).map(|i| format!("DEVICE{i:020}")).collect();
        let split = payloads("0123456789abcdef", &devices);
        assert!(split.len() > 1);
        assert!(split.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let relayed: Vec<String> = split
            .iter()
            .flat_map(|p| devices_from_others(p, "another").unwrap())
            .collect();
        assert_eq!(relayed, devices);
        assert!(payloads("o", &[]).is_empty());
    }

    #[test]
    fn our_own_notifications_are_ignored() {
        assert_eq!(devices_from_others("me D1 D2", "me"), None);
        assert_eq!(
            devices_from_others("you D1 D2", "me"),
            Some(vec!["D1".into(), "D2".into()])
        );
        assert_eq!(devices_from_others("", "me"), None);
    }
}
