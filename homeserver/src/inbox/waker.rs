//! Wake-ups for this process's inbox readers, and the entries just written for them.
//!
//! Without this, a connected device's stream would read every entry back from the
//! database right after the writer stored it. The message writer hands the entries it
//! committed to the device's mailbox; a stream that finds them contiguous with what it
//! has sent pushes them from memory. Anything else (entries written by another process,
//! paths that only wake, a mailbox that overflowed) shows up as a gap, and the reader
//! goes to the database as before.
//!
//! Every wake-up is also announced to the other processes of this domain (see
//! `inbox::relay`), which wake their own readers of those devices.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use parley_specs::groups_api::InboxEntry;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};

/// Before a device id in an announcement (and so in the relay's notifications): the
/// device was revoked, rather than given entries. Device ids are letters and digits.
pub const REVOKED_MARK: char = '!';

/// Entries kept per device for its readers; past this the oldest go (and are read from
/// the database instead), so a stalled reader costs bounded memory.
const MAX_FRESH: usize = 128;

/// Entries with a larger payload are announced to the other processes by device only
/// (their readers read them from the database): a notification holds under 8,000 bytes.
pub const MAX_RELAYED_PAYLOAD: usize = 2_048;

/// One device's wake-up and the committed entries not yet taken by its reader.
#[derive(Default)]
pub struct Mailbox {
    notify: Notify,
    fresh: Mutex<VecDeque<InboxEntry>>,
    /// The device was revoked: its readers must stop at once.
    revoked: AtomicBool,
    /// Inbox WebSockets of the device open on this process.
    streams: AtomicUsize,
    /// The highest inbox position this process knows the device to have: its readers
    /// have read, or been woken for, everything up to it. The periodic re-check wakes
    /// them only when the database has more (a wake-up was lost).
    known: AtomicI64,
}

/// An open inbox WebSocket of a device, counted until dropped.
pub struct StreamSlot(Arc<Mailbox>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Mailbox {
    /// Counts one more WebSocket of the device, unless it has `max` open already.
    pub fn open_stream(self: &Arc<Self>, max: usize) -> Option<StreamSlot> {
        if self.streams.fetch_add(1, Ordering::AcqRel) >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(StreamSlot(self.clone()))
    }

    pub fn notify(&self) -> &Notify {
        &self.notify
    }

    /// A reader has read the device's entries up to `cursor`.
    pub fn saw(&self, cursor: i64) {
        self.known.fetch_max(cursor, Ordering::AcqRel);
    }

    /// Whether the device was revoked while its reader waited; the reader ends.
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    fn fresh(&self) -> MutexGuard<'_, VecDeque<InboxEntry>> {
        self.fresh.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entries right after `cursor`, if memory holds them without a gap; `None`
    /// means the database must be read. Taken entries leave the mailbox.
    pub fn take_after(&self, cursor: i64) -> Option<Vec<InboxEntry>> {
        let mut fresh = self.fresh();
        while fresh.front().is_some_and(|e| e.cursor <= cursor) {
            fresh.pop_front();
        }
        let now = OffsetDateTime::now_utc();
        // Expired entries are never served; the database read skips them.
        let contiguous = (cursor + 1..)
            .zip(fresh.iter())
            .all(|(expected, e)| e.cursor == expected && e.expires_at.is_none_or(|t| t > now));
        if !contiguous || fresh.is_empty() {
            return None;
        }
        Some(fresh.drain(..).collect())
    }
}

/// An entry committed to a device's inbox.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct FreshEntry {
    pub device_id: String,
    pub entry: InboxEntry,
}

/// The mailboxes of the devices reading on this process.
#[derive(Default)]
pub struct InboxWaker {
    mailboxes: Mutex<HashMap<String, Arc<Mailbox>>>,
    /// What the other processes are told; set once the relay runs.
    announcements: OnceLock<mpsc::UnboundedSender<Announcement>>,
    /// Other processes listen: new entries are announced with their content.
    relay_entries: AtomicBool,
    /// The process is shutting down: streams close, long-polls answer (see `stop`).
    stopping: AtomicBool,
    stop: Notify,
}

impl InboxWaker {
    /// The process is shutting down: every inbox WebSocket closes (clients reconnect,
    /// to another process if there is one) and every long-poll answers with what it has.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
    }

    /// Whether `stop` was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once `stop` has been called (at once if it was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.stop.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopping() {
                return;
            }
            notified.await;
        }
    }

    fn mailboxes(&self) -> MutexGuard<'_, HashMap<String, Arc<Mailbox>>> {
        self.mailboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on every wake-up is also sent to the returned receiver; `None` if
    /// something already receives them.
    pub fn announce_to_other_processes(&self) -> Option<mpsc::UnboundedReceiver<Announcement>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.announcements.set(sender).ok()?;
        Some(receiver)
    }

    /// Whether other processes listen, so that entries are worth relaying (set by the relay).
    pub fn relay_entries(&self, others_listen: bool) {
        self.relay_entries.store(others_listen, Ordering::Release);
    }

    fn announce(&self, devices: Vec<String>) {
        if let Some(announcements) = self.announcements.get()
            && !devices.is_empty()
        {
            let _ = announcements.send(Announcement {
                devices,
                entries: Vec::new(),
            });
        }
    }

    /// The mailbox a reader of `device` waits on; it lives while some reader holds it.
    pub fn handle(&self, device: &str) -> Arc<Mailbox> {
        self.mailboxes().entry(device.to_owned()).or_default().clone()
    }

    /// Wakes the readers of these devices, here and on the other processes: they have
    /// new entries in the database.
    pub fn wake(&self, devices: &[String]) {
        self.wake_here(devices);
        self.announce(devices.to_vec());
    }

    /// Wakes the readers of these devices on this process only.
    pub fn wake_here(&self, devices: &[String]) {
        let mut mailboxes = self.mailboxes();
        for device in devices {
            if let Some(mailbox) = held(&mut mailboxes, device) {
                mailbox.notify.notify_waiters();
            }
        }
    }

    /// Ends the readers of these revoked devices, here and on the other processes.
    pub fn revoke(&self, devices: &[String]) {
        self.revoke_here(devices);
        self.announce(devices.iter().map(|d| format!("{REVOKED_MARK}{d}")).collect());
    }

    /// Ends the readers of these revoked devices on this process only.
    pub fn revoke_here(&self, devices: &[String]) {
        let mut mailboxes = self.mailboxes();
        for device in devices {
            if let Some(mailbox) = held(&mut mailboxes, device) {
                mailbox.revoked.store(true, Ordering::Release);
                mailbox.notify.notify_waiters();
            }
        }
    }

    /// Wakes every reader on this process, for when wake-ups may have been missed.
    pub fn wake_everyone_here(&self) {
        let mailboxes = self.mailboxes();
        for mailbox in mailboxes.values() {
            mailbox.notify.notify_waiters();
        }
    }

    /// The devices with a reader on this process.
    pub fn watched(&self) -> Vec<String> {
        let mut mailboxes = self.mailboxes();
        mailboxes.retain(|_, mailbox| Arc::strong_count(mailbox) > 1);
        mailboxes.keys().cloned().collect()
    }

    /// Given the database's last inbox position of watched devices (`None`: the device
    /// is gone), wakes the readers of those with entries this process was never told of
    /// and ends the readers of those gone. Returns how many devices were woken.
    pub fn catch_up(&self, positions: &[(String, Option<i64>)]) -> usize {
        let mut woken = 0;
        let mut gone = Vec::new();
        for (device, position) in positions {
            match position {
                None => gone.push(device.clone()),
                Some(position) => {
                    let Some(mailbox) = held(&mut self.mailboxes(), device) else {
                        continue;
                    };
                    if mailbox.known.fetch_max(*position, Ordering::AcqRel) < *position {
                        mailbox.notify.notify_waiters();
                        woken += 1;
                    }
                }
            }
        }
        self.revoke_here(&gone);
        woken
    }

    /// Hands committed entries to the readers of their devices and wakes them, and
    /// hands them to the other processes too: their readers push them without reading
    /// the database. Entries of one device must come in cursor order.
    pub fn deliver(&self, entries: Vec<FreshEntry>) {
        let Some(announcements) = self.announcements.get() else {
            self.deliver_here(entries);
            return;
        };
        let relay_entries = self.relay_entries.load(Ordering::Acquire);
        let mut devices: Vec<String> = Vec::new();
        let mut relayed = Vec::new();
        for fresh in &entries {
            if devices.last() != Some(&fresh.device_id) {
                devices.push(fresh.device_id.clone());
            }
            if relay_entries
                && fresh
                    .entry
                    .payload
                    .as_ref()
                    .is_none_or(|p| p.as_slice().len() <= MAX_RELAYED_PAYLOAD)
            {
                relayed.push(fresh.clone());
            }
        }
        self.deliver_here(entries);
        if !devices.is_empty() {
            let _ = announcements.send(Announcement {
                devices,
                entries: relayed,
            });
        }
    }

    /// Hands committed entries to the readers of their devices on this process and
    /// wakes them. Entries of one device must come in cursor order.
    pub fn deliver_here(&self, entries: Vec<FreshEntry>) {
        let mut mailboxes = self.mailboxes();
        let mut woken = Vec::new();
        for FreshEntry { device_id, entry } in entries {
            let Some(mailbox) = held(&mut mailboxes, &device_id) else {
                continue;
            };
            let mut fresh = mailbox.fresh();
            if fresh.len() == MAX_FRESH {
                fresh.pop_front();
            }
            mailbox.saw(entry.cursor);
            fresh.push_back(entry);
            drop(fresh);
            woken.push(mailbox);
        }
        drop(mailboxes);
        for mailbox in woken {
            mailbox.notify.notify_waiters();
        }
    }
}

/// What this process tells the others: devices with new entries (or, marked, revoked
/// devices), and those of the new entries small enough to travel along.
pub struct Announcement {
    pub devices: Vec<String>,
    pub entries: Vec<FreshEntry>,
}

/// The mailbox of `device` if a reader holds it; forgets it once nobody does.
fn held(mailboxes: &mut HashMap<String, Arc<Mailbox>>, device: &str) -> Option<Arc<Mailbox>> {
    let mailbox = mailboxes.get(device)?;
    if Arc::strong_count(mailbox) == 1 {
        mailboxes.remove(device);
        return None;
    }
    Some(mailbox.clone())
}

/// An application message entry for tests, from a fixed group and sender.
#[cfg(test)]
pub(crate) fn test_entry(cursor: i64, payload: Option<Vec<u8>>) -> InboxEntry {
    use parley_specs::groups_api::{GroupMember, InboxEntryKind};
    use parley_specs::{DeviceId, GroupId, UserId};
    InboxEntry {
        cursor,
        kind: InboxEntryKind::Message,
        group_id: GroupId::parse("g@test.parley").unwrap(),
        seq: cursor,
        epoch: 1,
        sender: GroupMember {
            user_id: UserId::parse("a@test.parley").unwrap(),
            device_id: DeviceId::parse("DEVICE1").unwrap(),
        },
        payload: payload.map(Into::into),
        sent_at: OffsetDateTime::now_utc(),
        expires_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cursor: i64) -> InboxEntry {
        test_entry(cursor, None)
    }

    fn fresh(device: &str, cursors: impl IntoIterator<Item = i64>) -> Vec<FreshEntry> {
        cursors
            .into_iter()
            .map(|c| FreshEntry {
                device_id: device.into(),
                entry: entry(c),
            })
            .collect()
    }

    fn cursors(entries: Option<Vec<InboxEntry>>) -> Option<Vec<i64>> {
        entries.map(|e| e.iter().map(|e| e.cursor).collect())
    }

    #[test]
    fn contiguous_entries_come_from_memory_and_gaps_send_readers_to_the_database() {
        let waker = InboxWaker::default();
        let mailbox = waker.handle("D1");
        waker.deliver(fresh("D1", [3, 4]));
        assert_eq!(cursors(mailbox.take_after(2)), Some(vec![3, 4]));
        assert_eq!(cursors(mailbox.take_after(4)), None, "taken entries are gone");
        waker.deliver(fresh("D1", [6]));
        assert_eq!(cursors(mailbox.take_after(4)), None, "5 is missing");
        waker.deliver(fresh("D1", [7]));
        assert_eq!(
            cursors(mailbox.take_after(5)),
            Some(vec![6, 7]),
            "what the database gave is skipped"
        );
    }

    #[test]
    fn nothing_is_kept_for_devices_nobody_reads_and_memory_is_bounded() {
        let waker = InboxWaker::default();
        waker.deliver(fresh("D2", [1]));
        assert!(waker.handle("D2").take_after(0).is_none());
        let mailbox = waker.handle("D3");
        waker.deliver(fresh("D3", 1..=(MAX_FRESH as i64 + 10)));
        assert_eq!(mailbox.fresh().len(), MAX_FRESH);
        assert_eq!(cursors(mailbox.take_after(0)), None, "the oldest were dropped");
        drop(mailbox);
        waker.wake(&["D2".into(), "D3".into()]);
        assert!(waker.mailboxes().is_empty(), "a mailbox nobody holds is forgotten");
    }
}
