//! Receiving: the inbox over the WebSocket (long-poll when it is unavailable), each entry
//! processed once (Welcomes, commits, application messages, receipts), the state saved,
//! and only then the entries acknowledged.
//!
//! Entries are processed in inbox order and never twice: the store remembers the last
//! inbox cursor processed, so an entry seen again (the WebSocket pushing what another
//! process of this profile already handled, or a batch whose acknowledgement was lost)
//! is skipped and acknowledged again. A bad entry (undecryptable, malformed) becomes an
//! [`Event::Undecryptable`] and is acknowledged too: it must not block the inbox.

use std::time::{Duration, Instant};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    MlsGroup, MlsMessageBodyIn, MlsMessageIn, OpenMlsProvider, ProcessedMessageContent, ProcessedWelcome, Sender,
    StagedCommit, StagedWelcome,
};
use parley_specs::groups_api::{GroupMember, InboxEntry, InboxEntryKind, InboxQuery, MissedEntries};
use parley_specs::roles::GROUP_KEY_EXTENSION_TYPE;
use parley_specs::{ErrorCode, GroupId, UserId};
use time::OffsetDateTime;

use super::device::join_config;
use super::directory::{leaves_after, tree_leaves};
use super::envelope::Envelope;
use super::events::{Event, LeafSource};
use super::groups::{member_of, members_of, mls_group_id};
use super::history::{Conversation, HistoryMessage};
use super::store::StoreLock;
use super::{Messenger, Result};

/// Entries read (or gathered from the WebSocket) per batch.
const BATCH: u32 = 100;
/// Longest long-poll; well below the client's request timeout.
const LONG_POLL_MAX: Duration = Duration::from_secs(20);
/// After the WebSocket failed to connect, long-poll this long before trying it again.
const WEBSOCKET_RETRY: Duration = Duration::from_secs(30);
/// After the WebSocket closed, try it again this soon.
const WEBSOCKET_RECONNECT: Duration = Duration::from_secs(1);
/// How often a listening device checks its account's key history (every sync does too).
const OWN_AUDIT_EVERY: Duration = Duration::from_secs(60);

/// How long to wait for more entries pushed right behind the first of a batch.
const BATCH_GATHER: Duration = Duration::from_millis(20);

/// `Err` inside: the entry is unusable (reported, acknowledged). `Err` outside: it could
/// not be processed now (a device list could not be fetched); the batch stops unsaved.
type EntryResult = std::result::Result<(), String>;

impl Messenger {
    /// Processes everything waiting in the inbox, once, and returns what happened (also
    /// what happened inside earlier operations, such as a catch-up before a retry).
    /// For scripts, and before sending from a short-lived process.
    pub async fn sync(&mut self) -> Result<Vec<Event>> {
        let lock = self.begin().await?;
        let result = self.sync_locked(&lock).await;
        self.end(lock, result)?;
        Ok(std::mem::take(&mut self.undelivered))
    }

    async fn sync_locked(&mut self, lock: &StoreLock) -> Result<()> {
        self.prepare_online(lock).await?;
        self.drain_inbox(lock, None).await?;
        // Entries processed earlier whose acknowledgement was lost.
        if self.acked_up_to < self.state.inbox_cursor {
            self.client.ack_inbox(self.state.inbox_cursor).await?;
            self.acked_up_to = self.state.inbox_cursor;
        }
        self.after_batch(lock).await?;
        // Key transparency: devices of this account this device did not know of.
        self.audit_own_devices_locked(lock).await.map(drop)
    }

    /// Waits up to `max_wait` for inbox entries (over the WebSocket, or a long-poll while
    /// it is unavailable), processes them and returns what happened; an empty list when
    /// nothing arrived. Call it in a loop to listen. Dropping the future (a timeout,
    /// Ctrl-C) loses nothing: entries taken from the socket are kept until processed,
    /// unsaved work is redone, saved work is never done twice.
    pub async fn receive(&mut self, max_wait: Duration) -> Result<Vec<Event>> {
        if !self.undelivered.is_empty() {
            return Ok(std::mem::take(&mut self.undelivered));
        }
        if !self.online_checked || !self.state.pending_commits.is_empty() {
            let lock = self.begin().await?;
            let result = self.prepare_online(&lock).await;
            self.end(lock, result)?;
        }
        if self.received.is_empty() {
            // Wake up for the next disappearing message, to delete it on time.
            let wait = self
                .until_next_expiry()
                .map_or(max_wait, |d| d.max(Duration::from_millis(100)).min(max_wait));
            self.wait_for_entries(wait).await?;
        }
        let lock = self.begin().await?;
        let entries = self.received.clone();
        let result = self.process_locked(&lock, &entries).await;
        self.end(lock, result)?;
        self.received.clear();
        if self.acked_up_to < self.state.inbox_cursor {
            self.acknowledge(self.state.inbox_cursor).await?;
        }
        if !self.state.leave_requests.is_empty() || self.key_packages_used {
            let lock = self.begin().await?;
            let result = self.after_batch(&lock).await;
            self.end(lock, result)?;
        }
        // A device that only listens checks its account's key history now and then too.
        if self.own_audit_at.is_none_or(|at| at.elapsed() >= OWN_AUDIT_EVERY) {
            let lock = self.begin().await?;
            let result = self.audit_own_devices_locked(&lock).await.map(drop);
            self.end(lock, result)?;
        }
        Ok(std::mem::take(&mut self.undelivered))
    }

    async fn process_locked(&mut self, lock: &StoreLock, entries: &[InboxEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if !self.state.pending_commits.is_empty() {
            self.resolve_pending_commits(lock).await?;
        }
        self.fetch_welcome_trees(entries).await;
        self.process_batch(lock, entries).await.map(drop)
    }

    /// What follows processing: remove users who announced they leave, and replace the
    /// KeyPackages that joining consumed.
    async fn after_batch(&mut self, lock: &StoreLock) -> Result<()> {
        self.honour_leave_requests(lock).await?;
        if self.key_packages_used {
            self.top_up_locked(lock).await?;
            self.key_packages_used = false;
        }
        Ok(())
    }

    /// Reads and processes inbox pages until the inbox is empty; the first read may wait
    /// `first_wait` for an entry.
    pub(crate) async fn drain_inbox(&mut self, lock: &StoreLock, first_wait: Option<Duration>) -> Result<()> {
        let mut wait = first_wait;
        loop {
            let query = InboxQuery {
                after: Some(self.state.inbox_cursor),
                limit: Some(BATCH),
                timeout_ms: wait.map(|w| w.min(LONG_POLL_MAX).as_millis() as u64),
            };
            wait = None;
            let page = self.client.read_inbox(&query).await?;
            self.note_missed(page.missed);
            if page.entries.is_empty() {
                self.skip_missed(lock, page.missed)?;
                return Ok(());
            }
            self.fetch_welcome_trees(&page.entries).await;
            let up_to = self.process_batch(lock, &page.entries).await?;
            self.client.ack_inbox(up_to).await?;
            self.acked_up_to = self.acked_up_to.max(up_to);
        }
    }

    /// Processes entries in inbox order and saves; returns the cursor to acknowledge.
    async fn process_batch(&mut self, lock: &StoreLock, entries: &[InboxEntry]) -> Result<i64> {
        let mut sorted: Vec<&InboxEntry> = entries.iter().collect();
        sorted.sort_by_key(|e| e.cursor);
        let mut up_to = self.state.inbox_cursor;
        let mut membership_seen = false;
        for entry in sorted {
            up_to = up_to.max(entry.cursor);
            if entry.cursor <= self.state.inbox_cursor {
                continue;
            }
            membership_seen |= entry.kind != InboxEntryKind::Receipt;
            if let Err(reason) = self.process_entry(entry).await? {
                self.undelivered.push(Event::Undecryptable {
                    group_id: entry.group_id.clone(),
                    seq: entry.seq,
                    reason,
                });
            }
            self.state.inbox_cursor = entry.cursor;
        }
        if membership_seen {
            self.check_verified_contacts()?;
        }
        self.save(lock)?;
        Ok(up_to)
    }

    async fn process_entry(&mut self, entry: &InboxEntry) -> Result<EntryResult> {
        match entry.kind {
            InboxEntryKind::Welcome => self.process_welcome(entry).await,
            InboxEntryKind::Message => self.process_group_message(entry).await,
            InboxEntryKind::Receipt => {
                self.process_receipt(entry);
                Ok(Ok(()))
            }
        }
    }

    async fn process_welcome(&mut self, entry: &InboxEntry) -> Result<EntryResult> {
        let staged = match self.stage_welcome(entry) {
            Ok(staged) => staged,
            Err(reason) => return Ok(Err(reason)),
        };
        // Every leaf of the group enters this device's view: each must be vouched for.
        let leaves = tree_leaves(staged.members());
        let refused = self.check_tree(&leaves).await?;
        let sender = staged
            .welcome_sender()
            .ok()
            .and_then(|leaf| member_of(leaf.credential()));
        if !refused.is_empty() {
            self.key_packages_used = true;
            self.undelivered.push(Event::LeafRefused {
                group_id: entry.group_id.clone(),
                seq: entry.seq,
                source: LeafSource::Welcome,
                by: sender,
                leaves: refused,
            });
            return Ok(Ok(()));
        }
        Ok(self.join_staged(entry, staged, sender.map(|m| m.user_id)))
    }

    /// The Welcome of `entry`, staged.
    fn stage_welcome(&mut self, entry: &InboxEntry) -> std::result::Result<StagedWelcome, String> {
        let message = MlsMessageIn::tls_deserialize_exact(payload(entry)?)
            .map_err(|e| format!("the Welcome is not an MLS message: {e}"))?;
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err("the entry should be a Welcome and is another MLS message".into());
        };
        if self.state.conversations.get(&entry.group_id).is_some_and(|c| c.member) {
            return Err("a Welcome to a group this device is a member of already".into());
        }
        // The state of a former membership (removed, then added again) makes way.
        if let Some(mut old) = self.load_group(&entry.group_id).map_err(|e| e.to_string())? {
            old.delete(self.provider.storage())
                .map_err(|e| format!("cannot delete the former group state: {e}"))?;
        }
        let tree = self.welcome_trees.remove(&entry.cursor);
        let processed = ProcessedWelcome::new_from_welcome(&self.provider, &join_config(), welcome)
            .map_err(|e| format!("cannot join from this Welcome: {e}"))?;
        // The group's metadata key, inside the Welcome's GroupInfo (encrypted to this
        // device; its signature is checked as the Welcome is staged).
        let key = processed
            .unverified_group_info()
            .extensions()
            .unknown(GROUP_KEY_EXTENSION_TYPE)
            .map(|ext| ext.0.clone());
        let staged = processed
            .into_staged_welcome(&self.provider, tree)
            .map_err(|e| format!("cannot join from this Welcome: {e}"))?;
        self.welcome_key = key;
        if staged.group_context().group_id() != &mls_group_id(&entry.group_id) {
            return Err("the Welcome is for another group than its inbox entry says".into());
        }
        Ok(staged)
    }

    fn join_staged(&mut self, entry: &InboxEntry, staged: StagedWelcome, added_by: Option<UserId>) -> EntryResult {
        let group = staged
            .into_group(&self.provider)
            .map_err(|e| format!("cannot join from this Welcome: {e}"))?;
        let now = OffsetDateTime::now_utc();
        let conversation = self
            .state
            .conversations
            .entry(entry.group_id.clone())
            .or_insert_with(|| Conversation::new(now));
        conversation.member = true;
        conversation.refused = None;
        conversation.joined_epoch = group.epoch().as_u64();
        let key = self.welcome_key.take();
        self.state.announced_leaves.remove(&entry.group_id);
        self.keep_group_key(&entry.group_id, key);
        self.key_packages_used = true;
        self.undelivered.push(Event::Joined {
            group_id: entry.group_id.clone(),
            added_by,
            members: members_of(&group).into_iter().collect(),
        });
        Ok(())
    }

    async fn process_group_message(&mut self, entry: &InboxEntry) -> Result<EntryResult> {
        let (group, sender, committer, processed) = match self.open_group_message(entry) {
            Ok(Some(opened)) => opened,
            Ok(None) => return Ok(Ok(())),
            Err(reason) => return Ok(Err(reason)),
        };
        Ok(match processed {
            ProcessedMessageContent::ApplicationMessage(app) => self.on_application(entry, sender, &app.into_bytes()),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.on_commit(entry, group, sender, committer, *staged).await?
            }
            // The hub relays no standalone proposals (it accepts only commits).
            _ => Ok(()),
        })
    }

    /// Decrypts or stages a group message (`None`: not for this device's state).
    #[allow(clippy::type_complexity)]
    fn open_group_message(
        &mut self,
        entry: &InboxEntry,
    ) -> std::result::Result<Option<(MlsGroup, GroupMember, Sender, ProcessedMessageContent)>, String> {
        // A group this device left (or never joined), or refused a commit of (its state
        // would include a leaf the directory does not vouch for): nothing more is read.
        if !self
            .state
            .conversations
            .get(&entry.group_id)
            .is_some_and(|c| c.member && c.refused.is_none())
        {
            return Ok(None);
        }
        let mut group = self
            .load_group(&entry.group_id)
            .map_err(|e| e.to_string())?
            .ok_or("this device has no state for the group")?;
        let message = MlsMessageIn::tls_deserialize_exact(payload(entry)?)
            .map_err(|e| format!("not an MLS message: {e}"))?
            .try_into_protocol_message()
            .map_err(|e| format!("not a group message: {e}"))?;
        if message.group_id() != group.group_id() {
            return Err("the message belongs to another group than its inbox entry says".into());
        }
        // Sent before this device joined (the hub accepts messages of recent epochs): MLS
        // gives new members no keys for those, by design.
        let joined_epoch = self
            .state
            .conversations
            .get(&entry.group_id)
            .map_or(0, |c| c.joined_epoch);
        if message.epoch().as_u64() < joined_epoch {
            return Ok(None);
        }
        let processed = group
            .process_message(&self.provider, message)
            .map_err(|e| format!("cannot decrypt or verify: {e}"))?;
        let sender = member_of(processed.credential()).ok_or("the sender's credential names no Parley device")?;
        let committer = processed.sender().clone();
        Ok(Some((group, sender, committer, processed.into_content())))
    }

    fn on_application(&mut self, entry: &InboxEntry, sender: GroupMember, plaintext: &[u8]) -> EntryResult {
        let envelope = Envelope::parse(plaintext).ok_or("the decrypted message is not a Parley envelope")?;
        match envelope {
            Envelope::Text {
                body,
                expires_at,
                reply_to,
            } => {
                let message = HistoryMessage {
                    // The earlier of the signed expiry and the server's.
                    expires_at: [expires_at, entry.expires_at].into_iter().flatten().min(),
                    reply_to,
                    ..HistoryMessage::new(entry.seq, sender.user_id, sender.device_id, entry.sent_at, body)
                };
                self.record_received(&entry.group_id, message);
            }
            Envelope::File(file) => {
                let text = file.text.clone().unwrap_or_default();
                let message = HistoryMessage {
                    expires_at: [file.expires_at, entry.expires_at].into_iter().flatten().min(),
                    attachment: Some(Box::new(file)),
                    ..HistoryMessage::new(entry.seq, sender.user_id, sender.device_id, entry.sent_at, text)
                };
                self.record_received(&entry.group_id, message);
            }
            action @ (Envelope::Reaction { .. } | Envelope::Edit { .. } | Envelope::Delete { .. }) => {
                self.apply_received_action(entry, &sender, action);
            }
            Envelope::Leave => {
                // This user's own devices leave it to the other members to remove them.
                if sender.user_id != self.state.user_id {
                    self.state
                        .leave_requests
                        .entry(entry.group_id.clone())
                        .or_default()
                        .insert(sender.user_id.clone());
                    self.state
                        .announced_leaves
                        .entry(entry.group_id.clone())
                        .or_default()
                        .insert(sender.user_id.clone());
                }
                self.undelivered.push(Event::LeaveAnnounced {
                    group_id: entry.group_id.clone(),
                    user: sender.user_id,
                });
            }
            Envelope::Typing { typing } => {
                if !self.is_this_device(&sender) {
                    self.undelivered.push(Event::Typing {
                        group_id: entry.group_id.clone(),
                        user: sender.user_id,
                        typing,
                    });
                }
            }
            Envelope::Presence { presence } => {
                if !self.is_this_device(&sender) {
                    self.undelivered.push(Event::Presence {
                        user: sender.user_id,
                        presence,
                    });
                }
            }
            Envelope::Unknown => {}
        }
        Ok(())
    }

    fn is_this_device(&self, member: &GroupMember) -> bool {
        member.user_id == self.state.user_id && member.device_id == self.state.device_id
    }

    async fn on_commit(
        &mut self,
        entry: &InboxEntry,
        group: MlsGroup,
        sender: GroupMember,
        committer: Sender,
        staged: StagedCommit,
    ) -> Result<EntryResult> {
        let external = matches!(committer, Sender::NewMemberCommit);
        if external && let Err(reason) = external_join_allowed(&group, &sender, &staged) {
            // The hub accepted what this device refuses: its state would part from the
            // group's, so the conversation reads nothing more.
            if let Some(conversation) = self.state.conversations.get_mut(&entry.group_id) {
                conversation.refused = Some(format!("commit #{}: {reason}", entry.seq));
            }
            return Ok(Err(reason));
        }
        // Every leaf the commit adds or changes must be vouched for, before it is applied.
        let (changed, after) = leaves_after(&tree_leaves(group.members()), &staged, &committer);
        // And a member commit must keep to the group policy, as the hub checks it: a
        // hub that let a forbidden one through does not get it applied here.
        if !external && let Err(reason) = self.policy_allows(entry, &group, &sender, &staged, &after).await? {
            if let Some(conversation) = self.state.conversations.get_mut(&entry.group_id) {
                conversation.refused = Some(format!("commit #{} by {}: {reason}", entry.seq, sender.user_id));
            }
            self.state.leave_requests.remove(&entry.group_id);
            return Ok(Err(format!(
                "refused commit #{} by {}: {reason}",
                entry.seq, sender.user_id
            )));
        }
        if !changed.is_empty() {
            let refused = self.check_leaves(&changed, &after).await?;
            if !refused.is_empty() {
                let reason = refused
                    .iter()
                    .map(|r| format!("leaf {}: {}", r.leaf_index, r.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                if let Some(conversation) = self.state.conversations.get_mut(&entry.group_id) {
                    conversation.refused = Some(format!("commit #{} by {}: {reason}", entry.seq, sender.user_id));
                }
                self.state.leave_requests.remove(&entry.group_id);
                self.undelivered.push(Event::LeafRefused {
                    group_id: entry.group_id.clone(),
                    seq: entry.seq,
                    source: LeafSource::Commit,
                    by: Some(sender),
                    leaves: refused,
                });
                return Ok(Ok(()));
            }
        }
        Ok(if external {
            self.apply_external_join(entry, group, sender, staged)
        } else {
            self.apply_commit(entry, group, sender, staged)
        })
    }

    fn apply_commit(
        &mut self,
        entry: &InboxEntry,
        mut group: MlsGroup,
        sender: GroupMember,
        staged: StagedCommit,
    ) -> EntryResult {
        let before = members_of(&group);
        let policy_before = super::roles::policy_of(&group);
        let removes_this_device = staged.self_removed();
        group
            .merge_staged_commit(&self.provider, staged)
            .map_err(|e| format!("cannot apply the commit: {e}"))?;
        if removes_this_device || !group.is_active() {
            group
                .delete(self.provider.storage())
                .map_err(|e| format!("cannot delete the group state: {e}"))?;
            if let Some(conversation) = self.state.conversations.get_mut(&entry.group_id) {
                conversation.member = false;
            }
            self.state.leave_requests.remove(&entry.group_id);
            self.undelivered.push(Event::Removed {
                group_id: entry.group_id.clone(),
                by: Some(sender.user_id),
            });
            return Ok(());
        }
        let after = members_of(&group);
        if super::roles::policy_of(&group) != policy_before {
            self.undelivered.push(Event::SettingsChanged {
                group_id: entry.group_id.clone(),
                by: Some(sender.user_id.clone()),
                settings: self.settings_of(&entry.group_id, &group),
            });
        }
        let added: Vec<_> = after.difference(&before).cloned().collect();
        let removed: Vec<_> = before.difference(&after).cloned().collect();
        if !added.is_empty() || !removed.is_empty() {
            if let Some(users) = self.state.announced_leaves.get_mut(&entry.group_id) {
                users.retain(|u| after.iter().any(|m| &m.user_id == u));
            }
            // Users who asked to leave and are gone need nothing more.
            if let Some(users) = self.state.leave_requests.get_mut(&entry.group_id) {
                users.retain(|u| after.iter().any(|m| &m.user_id == u));
                if users.is_empty() {
                    self.state.leave_requests.remove(&entry.group_id);
                }
            }
            self.undelivered.push(Event::MembersChanged {
                group_id: entry.group_id.clone(),
                by: Some(sender.user_id),
                added,
                removed,
            });
        }
        Ok(())
    }

    /// Applies an external commit that `external_join_allowed` and the leaf checks let
    /// through: the joiner's user added a device.
    fn apply_external_join(
        &mut self,
        entry: &InboxEntry,
        mut group: MlsGroup,
        joiner: GroupMember,
        staged: StagedCommit,
    ) -> EntryResult {
        group
            .merge_staged_commit(&self.provider, staged)
            .map_err(|e| format!("cannot apply the commit: {e}"))?;
        self.undelivered.push(Event::DeviceAdded {
            group_id: entry.group_id.clone(),
            user: joiner.user_id.clone(),
            device: joiner,
        });
        Ok(())
    }

    fn process_receipt(&mut self, entry: &InboxEntry) {
        let me = &self.state.user_id;
        if let Some(conversation) = self.state.conversations.get_mut(&entry.group_id)
            && let Some(message) = conversation.message_mut(entry.seq)
            && &message.sender == me
            && message.delivered_to.insert(entry.sender.clone())
        {
            self.undelivered.push(Event::Delivered {
                group_id: entry.group_id.clone(),
                seq: entry.seq,
                to: entry.sender.clone(),
            });
        }
    }

    /// Collects into `self.received` the entries that arrive within `wait`: from the
    /// WebSocket when it is (or can be) connected, else from a long-poll. Holds no lock
    /// while waiting.
    async fn wait_for_entries(&mut self, wait: Duration) -> Result<()> {
        let retry_due = self.websocket_retry_at.is_none_or(|at| Instant::now() >= at);
        if self.stream.is_none() && retry_due && self.websocket_enabled {
            match self.client.inbox_stream(self.state.inbox_cursor).await {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.websocket_retry_at = None;
                }
                Err(e) if matches!(e.code(), Some(ErrorCode::UnknownToken | ErrorCode::MissingToken)) => {
                    return Err(e.into());
                }
                Err(_) => self.websocket_retry_at = Some(Instant::now() + WEBSOCKET_RETRY),
            }
        }
        let Some(stream) = self.stream.as_mut() else {
            let query = InboxQuery {
                after: Some(self.state.inbox_cursor),
                limit: Some(BATCH),
                timeout_ms: Some(wait.min(LONG_POLL_MAX).as_millis() as u64),
            };
            let page = self.client.read_inbox(&query).await?;
            self.note_missed(page.missed);
            self.received.extend(page.entries);
            return Ok(());
        };
        // The first entry may take `wait`; those right behind it are gathered briefly.
        let mut patience = wait;
        while self.received.len() < BATCH as usize {
            match tokio::time::timeout(patience, stream.next()).await {
                Err(_) => break,
                Ok(Some(Ok(entry))) => self.received.push(entry),
                Ok(_) => {
                    // Closed or broken: long-poll until it reconnects.
                    self.stream = None;
                    self.websocket_retry_at = Some(Instant::now() + WEBSOCKET_RECONNECT);
                    break;
                }
            }
            patience = BATCH_GATHER;
        }
        Ok(())
    }

    /// Acknowledges entries up to `up_to`, on the WebSocket when connected.
    /// Reports entries the server dropped unread, once per process.
    fn note_missed(&mut self, missed: Option<MissedEntries>) {
        if let Some(missed) = missed
            && missed.through > self.missed_reported
            && missed.through > self.state.inbox_cursor
        {
            self.missed_reported = missed.through;
            self.undelivered.push(Event::MissedMessages { count: missed.count });
        }
    }

    /// With nothing left to read, moves the cursor past entries the server dropped, so
    /// that acknowledging it clears the server's mark.
    fn skip_missed(&mut self, lock: &StoreLock, missed: Option<MissedEntries>) -> Result<()> {
        if let Some(missed) = missed
            && missed.through > self.state.inbox_cursor
        {
            self.state.inbox_cursor = missed.through;
            self.save(lock)?;
        }
        Ok(())
    }

    /// On a device's first time online in this process: whether the server dropped
    /// entries while it was away (the WebSocket does not say).
    pub(crate) async fn check_missed(&mut self, lock: &StoreLock) -> Result<()> {
        let query = InboxQuery {
            after: Some(self.state.inbox_cursor),
            limit: Some(1),
            timeout_ms: None,
        };
        let page = self.client.read_inbox(&query).await?;
        self.note_missed(page.missed);
        if page.entries.is_empty() {
            self.skip_missed(lock, page.missed)?;
            if self.acked_up_to < self.state.inbox_cursor && page.missed.is_some() {
                self.client.ack_inbox(self.state.inbox_cursor).await?;
                self.acked_up_to = self.state.inbox_cursor;
            }
        }
        Ok(())
    }

    async fn acknowledge(&mut self, up_to: i64) -> Result<()> {
        let on_socket = match self.stream.as_mut() {
            Some(stream) => stream.ack(up_to).await.is_ok(),
            None => false,
        };
        if !on_socket {
            self.stream = None;
            self.client.ack_inbox(up_to).await?;
        }
        self.acked_up_to = self.acked_up_to.max(up_to);
        Ok(())
    }

    /// Lets [`Messenger::receive`] use the inbox WebSocket (the default) or only
    /// long-polls (where a proxy breaks WebSockets, say).
    pub fn set_websocket_enabled(&mut self, enabled: bool) {
        self.websocket_enabled = enabled;
        if !enabled {
            self.stream = None;
        }
    }

    /// Whether entries currently arrive over the WebSocket (rather than long-polls).
    pub fn receiving_over_websocket(&self) -> bool {
        self.stream.is_some()
    }

    /// Time until the next message in the history disappears.
    fn until_next_expiry(&self) -> Option<Duration> {
        let now = OffsetDateTime::now_utc();
        self.state
            .conversations
            .values()
            .flat_map(|c| c.messages.iter().filter_map(|m| m.expires_at))
            .min()
            .map(|at| Duration::try_from(at - now).unwrap_or(Duration::ZERO))
    }
}

fn payload(entry: &InboxEntry) -> std::result::Result<&[u8], String> {
    entry
        .payload
        .as_ref()
        .map(|p| p.as_slice())
        .ok_or_else(|| "the entry has no payload".to_owned())
}

/// An external commit (a device joined by itself) is accepted only when it adds that
/// device's leaf and nothing else, for a user who has a device in the group already —
/// what the hub checks too; otherwise it is refused here, and the user is told.
fn external_join_allowed(
    group: &MlsGroup,
    joiner: &GroupMember,
    staged: &StagedCommit,
) -> std::result::Result<(), String> {
    if !members_of(group).iter().any(|m| m.user_id == joiner.user_id) {
        return Err(format!(
            "refused a device that joined by itself: {} has no device in the group, so {}/{} may not join \
             without being added",
            joiner.user_id, joiner.user_id, joiner.device_id
        ));
    }
    if staged.self_removed() {
        return Err("refused a device that joined by itself and removed this device".into());
    }
    if staged.remove_proposals().next().is_some()
        || staged.add_proposals().next().is_some()
        || staged.update_proposals().next().is_some()
    {
        return Err(format!(
            "refused a device that joined by itself: {}/{} did more than add its own leaf",
            joiner.user_id, joiner.device_id
        ));
    }
    Ok(())
}

impl Messenger {
    /// Keeps a received message in its conversation's history and reports it, unless it
    /// has expired already.
    fn record_received(&mut self, group_id: &GroupId, message: HistoryMessage) {
        if message.expired(OffsetDateTime::now_utc()) {
            return;
        }
        if let Some(conversation) = self.state.conversations.get_mut(group_id) {
            conversation.record(message.clone());
        }
        self.undelivered.push(Event::Message {
            group_id: group_id.clone(),
            message,
        });
    }
}
