//! The local message history of each conversation: kept in the sealed store, in the hub's
//! order, searchable, exportable; expired messages are deleted, and any message can be
//! deleted for real (the store is rewritten without it).

use std::collections::{BTreeMap, BTreeSet};

use parley_specs::groups_api::GroupMember;
use parley_specs::{DeviceId, GroupId, UserId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

/// One message of a conversation: its text, and a file when one was sent with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryMessage {
    /// The hub's sequence number: the conversation's order.
    pub seq: i64,
    /// Who sent it (from the MLS credential that signed it).
    pub sender: UserId,
    /// The device that sent it.
    pub sender_device: DeviceId,
    /// When the hub accepted it (when this device sent it, for its own messages).
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// The text.
    pub text: String,
    /// A disappearing message is deleted everywhere at this time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// For messages of this account: the devices that acknowledged receiving it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub delivered_to: BTreeSet<GroupMember>,
    /// The message this one answers (its sequence number; it may be gone since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    /// Reactions: each emoji with the users who reacted with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, BTreeSet<UserId>>,
    /// When the sender last edited the text (the hub's time of the edit); `None` when
    /// never edited. Earlier versions are not kept.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub edited_at: Option<OffsetDateTime>,
    /// An encrypted file sent with the message (its text is then the file's text, or
    /// empty); `Messenger::download_file` fetches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Box<super::envelope::FileAttachment>>,
}

/// Most distinct reactions one user may have on one message.
pub const MAX_REACTIONS_PER_USER: usize = 20;

impl HistoryMessage {
    /// A message with only its text: no expiry, deliveries, reply, reactions, edit or file
    /// (set those fields as needed).
    pub fn new(seq: i64, sender: UserId, sender_device: DeviceId, sent_at: OffsetDateTime, text: String) -> Self {
        Self {
            seq,
            sender,
            sender_device,
            sent_at,
            text,
            expires_at: None,
            delivered_to: BTreeSet::new(),
            reply_to: None,
            reactions: BTreeMap::new(),
            edited_at: None,
            attachment: None,
        }
    }

    /// Whether the message has expired at `now`.
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    fn matches(&self, needle_lowercase: &str) -> bool {
        self.text.to_lowercase().contains(needle_lowercase)
            || self
                .attachment
                .as_ref()
                .is_some_and(|a| a.name.to_lowercase().contains(needle_lowercase))
    }

    /// Adds (or with `remove`, takes back) `user`'s reaction `emoji`; returns whether
    /// anything changed. `Err` when the user has too many reactions on the message.
    pub(crate) fn react(&mut self, user: &UserId, emoji: &str, remove: bool) -> Result<bool, String> {
        if remove {
            let Some(users) = self.reactions.get_mut(emoji) else {
                return Ok(false);
            };
            let changed = users.remove(user);
            if users.is_empty() {
                self.reactions.remove(emoji);
            }
            return Ok(changed);
        }
        if self.reacted(user, emoji) {
            return Ok(false);
        }
        let own = self.reactions.values().filter(|users| users.contains(user)).count();
        if own >= MAX_REACTIONS_PER_USER {
            return Err(format!(
                "{user} has {MAX_REACTIONS_PER_USER} reactions on #{} already",
                self.seq
            ));
        }
        self.reactions.entry(emoji.to_owned()).or_default().insert(user.clone());
        Ok(true)
    }

    /// Whether `user` reacted with `emoji`.
    pub fn reacted(&self, user: &UserId, emoji: &str) -> bool {
        self.reactions.get(emoji).is_some_and(|users| users.contains(user))
    }
}

/// Who may delete message `target` for everyone: the user who sent it.
///
/// Hook for roles: when groups have admins, an admin may too — pass the group's admins
/// here and accept them as well. Edits stay the sender's alone.
pub(crate) fn may_delete_for_everyone(target: &HistoryMessage, by: &UserId) -> bool {
    &target.sender == by
}

/// Who may edit message `target`: the user who sent it (from any of their devices).
pub(crate) fn may_edit(target: &HistoryMessage, by: &UserId) -> bool {
    &target.sender == by
}

/// One conversation (MLS group) on this device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Conversation {
    /// Whether this device is still a member (false once removed by another member).
    pub(crate) member: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) joined_at: OffsetDateTime,
    /// The epoch this device joined at (messages of earlier epochs are not for it).
    #[serde(default)]
    pub(crate) joined_epoch: u64,
    /// Text messages by sequence number, ascending.
    pub(crate) messages: Vec<HistoryMessage>,
    /// This device's disappearing-message timer for the conversation, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timer_secs: Option<u64>,
    /// Messages up to this sequence number were read on this device.
    #[serde(default)]
    pub(crate) read_up_to: i64,
    /// Set when this device refused a commit of the group (a leaf the device key
    /// directory does not vouch for): the group's state would include that leaf, so the
    /// conversation takes no further messages. Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refused: Option<String>,
}

impl Conversation {
    pub(crate) fn new(now: OffsetDateTime) -> Self {
        Self {
            member: true,
            joined_at: now,
            joined_epoch: 0,
            messages: Vec::new(),
            timer_secs: None,
            read_up_to: 0,
            refused: None,
        }
    }

    /// Adds a message at its place in the hub's order (replacing one with the same seq).
    pub(crate) fn record(&mut self, message: HistoryMessage) {
        match self.messages.binary_search_by_key(&message.seq, |m| m.seq) {
            Ok(at) => self.messages[at] = message,
            Err(at) => self.messages.insert(at, message),
        }
    }

    pub(crate) fn message_mut(&mut self, seq: i64) -> Option<&mut HistoryMessage> {
        let at = self.messages.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.messages.get_mut(at)
    }

    /// Message `seq` when it is in the history and not expired at `now`.
    pub(crate) fn live_message_mut(&mut self, seq: i64, now: OffsetDateTime) -> Option<&mut HistoryMessage> {
        self.message_mut(seq).filter(|m| !m.expired(now))
    }

    /// Deletes the messages expired at `now`; returns their sequence numbers.
    pub(crate) fn purge_expired(&mut self, now: OffsetDateTime) -> Vec<i64> {
        let expired = self.messages.iter().filter(|m| m.expired(now)).map(|m| m.seq).collect();
        self.messages.retain(|m| !m.expired(now));
        expired
    }

    /// Unexpired messages of other users after the read marker.
    pub(crate) fn unread(&self, me: &UserId, now: OffsetDateTime) -> usize {
        self.messages
            .iter()
            .filter(|m| m.seq > self.read_up_to && &m.sender != me && !m.expired(now))
            .count()
    }

    /// Deletes message `seq`; returns whether it was there.
    pub(crate) fn delete(&mut self, seq: i64) -> bool {
        match self.messages.binary_search_by_key(&seq, |m| m.seq) {
            Ok(at) => {
                self.messages.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The unexpired messages, those containing `search` (case-insensitive) when given.
    pub(crate) fn messages(&self, search: Option<&str>, now: OffsetDateTime) -> Vec<HistoryMessage> {
        let needle = search.map(str::to_lowercase);
        self.messages
            .iter()
            .filter(|m| !m.expired(now))
            .filter(|m| needle.as_deref().is_none_or(|n| m.matches(n)))
            .cloned()
            .collect()
    }
}

/// How a conversation is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON document: the group, when and by whom it was exported, and the messages.
    Json,
    /// One line per message: time (UTC), sequence number, sender, text (continuation lines
    /// indented; control characters replaced).
    Text,
}

/// The export of `messages` of `group`.
pub(crate) fn export(
    group: &GroupId,
    by: &UserId,
    messages: &[HistoryMessage],
    format: ExportFormat,
    now: OffsetDateTime,
) -> Result<String, serde_json::Error> {
    match format {
        ExportFormat::Json => {
            let doc = serde_json::json!({
                "group_id": group,
                "exported_by": by,
                "exported_at": rfc3339(now),
                "messages": messages,
            });
            serde_json::to_string_pretty(&doc)
        }
        ExportFormat::Text => {
            let mut out = format!("Conversation {group}, exported by {by} at {}\n", human_time(now));
            for m in messages {
                out.push_str(&text_line(m));
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// `2026-01-02 03:04:05 UTC  #12  alice@a.example: text`, one line per text line.
pub fn text_line(message: &HistoryMessage) -> String {
    let mut lines = safe_text(&message.text);
    let first = lines.next().unwrap_or_default();
    let mut line = format!(
        "{}  #{}  {}: {first}",
        human_time(message.sent_at),
        message.seq,
        message.sender
    );
    if message.edited_at.is_some() {
        line.push_str("  (edited)");
    }
    if let Some(file) = &message.attachment {
        let name: String = safe_text(&file.name).collect::<Vec<_>>().join(" ");
        let kind: String = safe_text(&file.media_type).collect::<Vec<_>>().join(" ");
        line = format!("{line}  [file: {name}, {} bytes, {kind}]", file.size);
    }
    if let Some(expires_at) = message.expires_at {
        line = format!("{line}  (disappears at {})", human_time(expires_at));
    }
    if let Some(reactions) = reactions_text(message) {
        line.push_str("  [");
        line.push_str(&reactions);
        line.push(']');
    }
    for more in lines {
        line.push_str("\n    ");
        line.push_str(&more);
    }
    line
}

/// The lines of a history: each message as [`text_line`] shows it, a reply preceded by
/// the first line of the message it answers (`  > bob@b.example: …`), when still there.
pub fn history_text(messages: &[HistoryMessage]) -> String {
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some(target) = message.reply_to {
            let quoted = match messages.binary_search_by_key(&target, |m| m.seq) {
                Ok(at) => {
                    let original = &messages[at];
                    let first = safe_text(&original.text).next().unwrap_or_default();
                    format!("  > #{target} {}: {}", original.sender, shorten(&first, 60))
                }
                Err(_) => format!("  > #{target} (no longer on this device)"),
            };
            out.push(quoted);
        }
        out.push(text_line(message));
    }
    out.join("\n")
}

/// `👍 2, ❤ 1`: each reaction with how many users reacted with it (most first).
fn reactions_text(message: &HistoryMessage) -> Option<String> {
    if message.reactions.is_empty() {
        return None;
    }
    let mut counts: Vec<(&String, usize)> = message.reactions.iter().map(|(e, u)| (e, u.len())).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Some(
        counts
            .iter()
            .map(|(emoji, n)| format!("{} {n}", safe_text(emoji).next().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push('…');
    cut
}

/// The text's lines with control characters (terminal escapes) replaced by U+FFFD.
fn safe_text(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split('\n').map(|line| {
        line.trim_end_matches('\r')
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c })
            .collect()
    })
}

/// `2026-01-02 03:04:05 UTC`.
pub fn human_time(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn message(seq: i64, text: &str, expires_at: Option<OffsetDateTime>) -> HistoryMessage {
        HistoryMessage {
            expires_at,
            ..HistoryMessage::new(
                seq,
                UserId::parse("ann@a.example").expect("user"),
                DeviceId::parse("DEV1").expect("device"),
                datetime!(2026-01-02 03:04:05 UTC),
                text.to_owned(),
            )
        }
    }

    #[test]
    fn reactions_replies_and_edits_are_shown() {
        let ann = UserId::parse("ann@a.example").expect("user");
        let ben = UserId::parse("ben@b.example").expect("user");
        let mut first = message(1, "Lunch at noon?", None);
        assert_eq!(first.react(&ann, "👍", false), Ok(true));
        assert_eq!(first.react(&ben, "👍", false), Ok(true));
        assert_eq!(first.react(&ben, "👍", false), Ok(false), "once per user");
        assert_eq!(first.react(&ben, "🎉", false), Ok(true));
        assert_eq!(first.react(&ben, "🎉", true), Ok(true));
        assert_eq!(first.react(&ben, "🎉", true), Ok(false));
        assert!(!first.reactions.contains_key("🎉"), "an emoji nobody uses is gone");
        for i in 0..MAX_REACTIONS_PER_USER - 1 {
            assert_eq!(first.react(&ann, &format!("e{i}"), false), Ok(true));
        }
        assert!(first.react(&ann, "one-too-many", false).is_err());
        for i in 0..MAX_REACTIONS_PER_USER - 1 {
            assert_eq!(first.react(&ann, &format!("e{i}"), true), Ok(true));
        }
        let mut reply = message(2, "Yes!", None);
        reply.reply_to = Some(1);
        reply.edited_at = Some(datetime!(2026-01-02 03:05:00 UTC));
        let mut orphan = message(3, "and you?", None);
        orphan.reply_to = Some(99);
        assert_eq!(
            history_text(&[first, reply, orphan]),
            "2026-01-02 03:04:05 UTC  #1  ann@a.example: Lunch at noon?  [👍 2]\n  \
             > #1 ann@a.example: Lunch at noon?\n\
             2026-01-02 03:04:05 UTC  #2  ann@a.example: Yes!  (edited)\n  \
             > #99 (no longer on this device)\n\
             2026-01-02 03:04:05 UTC  #3  ann@a.example: and you?"
        );
    }

    #[test]
    fn hub_order_search_expiry_and_deletion() {
        let now = datetime!(2026-01-02 04:00:00 UTC);
        let mut c = Conversation::new(now);
        c.record(message(5, "Lunch at noon?", None));
        c.record(message(2, "hello", None));
        c.record(message(9, "gone soon", Some(now + time::Duration::minutes(1))));
        c.record(message(7, "already gone", Some(now - time::Duration::minutes(1))));
        let seqs = |v: Vec<HistoryMessage>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(c.messages(None, now)),
            vec![2, 5, 9],
            "expired ones are never shown"
        );
        assert_eq!(seqs(c.messages(Some("LUNCH"), now)), vec![5]);
        assert_eq!(c.purge_expired(now), vec![7]);
        assert_eq!(c.messages.len(), 3);
        assert!(c.delete(5));
        assert!(!c.delete(5));
        assert_eq!(seqs(c.messages(None, now)), vec![2, 9]);
        assert_eq!(c.purge_expired(now + time::Duration::hours(1)), vec![9]);
    }

    #[test]
    fn unread_counts_messages_of_others_after_the_marker() {
        let now = datetime!(2026-01-02 04:00:00 UTC);
        let me = UserId::parse("ben@a.example").expect("user");
        let mut c = Conversation::new(now);
        for seq in 1..=4 {
            c.record(message(seq, "from ann", None));
        }
        let mut mine = message(5, "from me", None);
        mine.sender = me.clone();
        c.record(mine);
        assert_eq!(c.unread(&me, now), 4);
        c.read_up_to = 2;
        assert_eq!(c.unread(&me, now), 2);
        c.read_up_to = 5;
        assert_eq!(c.unread(&me, now), 0);
        // Older stores have neither field.
        let old: Conversation =
            serde_json::from_str(r#"{"member":true,"joined_at":"2026-01-02T03:04:05Z","messages":[]}"#)
                .expect("old conversation");
        assert_eq!((old.timer_secs, old.read_up_to), (None, 0));
    }

    #[test]
    fn exports() -> Result<(), serde_json::Error> {
        let group = GroupId::parse("abc@a.example").expect("group");
        let by = UserId::parse("ben@a.example").expect("user");
        let now = datetime!(2026-01-02 04:00:00 UTC);
        let messages = vec![message(1, "two\nlines \x1b[2J", None)];
        let text = export(&group, &by, &messages, ExportFormat::Text, now)?;
        assert_eq!(
            text,
            "Conversation abc@a.example, exported by ben@a.example at 2026-01-02 04:00:00 UTC\n\
             2026-01-02 03:04:05 UTC  #1  ann@a.example: two\n    lines \u{fffd}[2J\n"
        );
        let json: serde_json::Value = serde_json::from_str(&export(&group, &by, &messages, ExportFormat::Json, now)?)?;
        assert_eq!(json["messages"][0]["text"], "two\nlines \x1b[2J");
        assert_eq!(json["group_id"], "abc@a.example");
        Ok(())
    }
}
