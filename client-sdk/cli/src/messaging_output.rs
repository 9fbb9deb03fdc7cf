//! How the messaging commands show things to people: events, tables of groups and
//! members, safety numbers. Everything that came from another device or a server goes
//! through [`printable`] (or the history's own escaping) before reaching the terminal.

use std::collections::BTreeMap;

use parley_sdk::messenger::{
    AddOutcome, DeviceKey, Event, GroupOverview, GroupSettings, LeafSource, MemberDevice, Presence, RefusedLeaf,
    SafetyNumber, Verification, human_time, text_line,
};
use parley_specs::groups_api::GroupMember;
use parley_specs::{GroupId, UserId};

use crate::output::printable;

/// One event as a line (or a few) of text.
pub(crate) fn event_text(event: &Event) -> String {
    match event {
        Event::Message { group_id, message } => match message.reply_to {
            Some(to) => format!("[{group_id}] (reply to #{to}) {}", text_line(message)),
            None => format!("[{group_id}] {}", text_line(message)),
        },
        Event::MessageChanged { group_id, message, by } => {
            format!("[{group_id}] {by} changed #{}: {}", message.seq, text_line(message))
        }
        Event::DeletedForEveryone { group_id, seq, by } => {
            format!("[{group_id}] {by} deleted #{seq} for everyone")
        }
        Event::ActionRefused {
            group_id,
            seq,
            by,
            reason,
        } => format!("[{group_id}] warning: refused #{seq} from {by}: {}", printable(reason)),
        Event::Joined {
            group_id,
            added_by,
            members,
        } => format!(
            "[{group_id}] {} added this device; members: {}",
            added_by.as_ref().map_or("someone".to_owned(), ToString::to_string),
            users_and_devices(members)
        ),
        Event::SettingsChanged { group_id, by, settings } => {
            let by = by.as_ref().map_or("someone".to_owned(), ToString::to_string);
            let admins: Vec<String> = settings.admins.iter().map(ToString::to_string).collect();
            format!(
                "[{group_id}] {by} changed the group: name \"{}\", topic \"{}\", admins {}",
                printable(&settings.name),
                printable(&settings.topic),
                admins.join(", ")
            )
        }
        Event::MembersChanged {
            group_id,
            by,
            added,
            removed,
        } => {
            let by = by.as_ref().map_or("someone".to_owned(), ToString::to_string);
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("added {}", users_and_devices(added)));
            }
            if !removed.is_empty() {
                parts.push(format!("removed {}", users_and_devices(removed)));
            }
            format!("[{group_id}] {by} {}", parts.join(" and "))
        }
        Event::DeviceAdded { group_id, user, device } => format!(
            "[{group_id}] {user} added a device ({}) by joining with it",
            device.device_id
        ),
        Event::UnknownOwnDevice { alert } => format!(
            "WARNING: a device of your account you did not add here appeared: {} (published in epoch {}{}). \
             If it is not yours, delete it (`parley devices delete {}`) and change your password; \
             if it is, `parley devices audit --accept {}`",
            alert.device_id,
            alert.epoch,
            alert.published_at_ms.map_or(String::new(), |ms| format!(
                ", {}",
                crate::messaging_output::time_of_ms(ms)
            )),
            alert.device_id,
            alert.device_id
        ),
        Event::TransparencyFailed { server, reason } => format!(
            "WARNING: the key directory of your server {server} failed a check: {}",
            printable(reason)
        ),
        Event::JoinFailed { group_id, reason } => {
            format!(
                "[{group_id}] could not join this conversation of yours: {}",
                printable(reason)
            )
        }
        Event::Removed { group_id, by } => format!(
            "[{group_id}] {} removed this device; the history stays readable here",
            by.as_ref().map_or("someone".to_owned(), ToString::to_string)
        ),
        Event::LeaveAnnounced { group_id, user } => format!("[{group_id}] {user} leaves the group"),
        Event::Delivered { group_id, seq, to } => {
            format!("[{group_id}] #{seq} delivered to {}/{}", to.user_id, to.device_id)
        }
        Event::VerifiedContactChanged { user, added, removed } => verified_contact_warning(user, added, removed),
        Event::Undecryptable { group_id, seq, reason } => {
            format!("[{group_id}] #{seq} could not be read: {}", printable(reason))
        }
        Event::Typing { group_id, user, typing } => {
            format!(
                "[{group_id}] {user} {}",
                if *typing { "is typing" } else { "stopped typing" }
            )
        }
        Event::Presence { user, presence } => format!(
            "{user} is {}",
            match presence {
                Presence::Online => "online",
                Presence::Away => "away",
            }
        ),
        Event::Expired { group_id, seq } => format!("[{group_id}] #{seq} disappeared"),
        Event::MissedMessages { count } => format!(
            "the server dropped {count} message(s) for this device while it was away (kept too long unread); they are lost here"
        ),
        Event::LeafRefused {
            group_id,
            seq,
            source,
            by,
            leaves,
        } => leaf_refused_warning(group_id, *seq, *source, by.as_ref(), leaves),
    }
}

/// The warning for a Welcome or commit refused because of leaves the device key
/// directory does not vouch for: which leaf, which device it claims to be, and why.
pub(crate) fn leaf_refused_warning(
    group_id: &GroupId,
    seq: i64,
    source: LeafSource,
    by: Option<&GroupMember>,
    leaves: &[RefusedLeaf],
) -> String {
    let by = by.map_or("someone".to_owned(), |m| format!("{}/{}", m.user_id, m.device_id));
    let mut text = match source {
        LeafSource::Welcome => format!(
            "[{group_id}] WARNING: refused to join: the invitation from {by} puts devices in the group that their own \
             servers do not vouch for; this device did not join"
        ),
        LeafSource::Commit => format!(
            "[{group_id}] WARNING: refused change #{seq} by {by}: it puts devices in the group that their own servers \
             do not vouch for; this conversation is closed on this device (leave it and start a new one)"
        ),
    };
    for leaf in leaves {
        let claims = leaf.claims.as_ref().map_or_else(
            || format!("\"{}\"", printable(&leaf.identity)),
            |m| format!("{}/{}", m.user_id, m.device_id),
        );
        let key: String = leaf.signature_key.chars().take(16).collect();
        text.push_str(&format!(
            "\n  leaf {} claims to be {claims} (key {key}…): {}",
            leaf.leaf_index,
            printable(&leaf.reason)
        ));
    }
    text
}

/// The warning for a verified contact whose devices changed.
pub(crate) fn verified_contact_warning(user: &UserId, added: &[DeviceKey], removed: &[DeviceKey]) -> String {
    let mut text = format!("WARNING: the devices of {user} changed since you verified them");
    if !added.is_empty() {
        text.push_str(&format!("; new: {}", device_list(added)));
    }
    if !removed.is_empty() {
        text.push_str(&format!("; gone: {}", device_list(removed)));
    }
    text.push_str(&format!(
        ". Compare safety numbers again (`parley verify {user}`) before trusting them."
    ));
    text
}

fn device_list(keys: &[DeviceKey]) -> String {
    keys.iter()
        .map(|k| k.device_id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ann@x (2 devices), ben@x (1 device)`.
pub(crate) fn users_and_devices(members: &[GroupMember]) -> String {
    let mut per_user: BTreeMap<&UserId, usize> = BTreeMap::new();
    for m in members {
        *per_user.entry(&m.user_id).or_default() += 1;
    }
    per_user
        .into_iter()
        .map(|(user, n)| format!("{user} ({n} device{})", if n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `parley group add` did.
pub(crate) fn add_summary(outcome: &AddOutcome) -> String {
    let mut lines = Vec::new();
    if outcome.added.is_empty() {
        lines.push(format!("Nobody new to add to {}.", outcome.group_id));
    } else {
        lines.push(format!(
            "Added {} to {}.",
            users_and_devices(&outcome.added),
            outcome.group_id
        ));
    }
    if !outcome.already_members.is_empty() {
        lines.push(format!(
            "Already members: {}.",
            users_and_devices(&outcome.already_members)
        ));
    }
    if !outcome.without_key_packages.is_empty() {
        lines.push(format!(
            "Not added (no KeyPackage left; they publish more when they next connect): {}.",
            member_list(&outcome.without_key_packages)
        ));
    }
    for (device, reason) in &outcome.refused_key_packages {
        lines.push(format!(
            "Not added: {}/{}: {}.",
            device.user_id,
            device.device_id,
            printable(reason)
        ));
    }
    lines.join("\n")
}

fn member_list(members: &[GroupMember]) -> String {
    members
        .iter()
        .map(|m| format!("{}/{}", m.user_id, m.device_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conversations on this device.
pub(crate) fn group_table(groups: &[GroupOverview]) -> String {
    if groups.is_empty() {
        return "No conversations on this device. `parley group create` starts one; `parley sync` \
                fetches groups others added you to."
            .to_owned();
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group_id.to_string(),
                g.settings.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                if g.member {
                    users_and_devices(&g.members)
                } else {
                    "(this device was removed)".to_owned()
                },
                g.messages.to_string(),
                g.last_message_at.map(human_time).unwrap_or_default(),
            ]
        })
        .collect();
    table(&["GROUP", "NAME", "MEMBERS", "MESSAGES", "LAST MESSAGE"], rows)
}

/// A group's name, topic and admins.
pub(crate) fn settings_text(settings: &GroupSettings) -> String {
    let or_none = |s: &str| {
        if s.is_empty() {
            "(none)".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut text = format!(
        "Group {}\nName:   {}\nTopic:  {}\n",
        settings.group_id,
        or_none(&settings.name),
        or_none(&settings.topic)
    );
    if let Some(secs) = settings.timer_secs {
        text.push_str(&format!("Timer:  messages disappear after {secs} s\n"));
    }
    if !settings.name_known {
        text.push_str("(this device does not have the group's name key yet)\n");
    }
    if settings.admins.is_empty() {
        text.push_str("Admins: (a group without roles: every member may change it)");
    } else {
        let admins: Vec<String> = settings.admins.iter().map(ToString::to_string).collect();
        text.push_str(&format!("Admins: {}", admins.join(", ")));
    }
    text
}

/// A group's devices; `*` marks this one.
pub(crate) fn member_table(devices: &[MemberDevice]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                if d.this_device { "*" } else { " " }.to_owned(),
                d.user_id.to_string(),
                d.device_id.to_string(),
                short_key(&d.signature_key),
            ]
        })
        .collect();
    let mut text = table(&[" ", "USER", "DEVICE", "SIGNATURE KEY"], rows);
    text.push_str("\n* = this device");
    text
}

fn short_key(hex: &str) -> String {
    match hex.get(..16) {
        Some(start) if hex.len() > 16 => format!("{start}…"),
        _ => hex.to_owned(),
    }
}

/// The safety number, the devices it covers and what to do.
pub(crate) fn safety_text(number: &SafetyNumber, marked: bool) -> String {
    let mut text = String::new();
    if marked {
        text.push_str(&format!(
            "Marked {} verified ({} device{}).\n\n",
            number.contact,
            number.contact_devices.len(),
            if number.contact_devices.len() == 1 { "" } else { "s" }
        ));
    }
    text.push_str(&format!(
        "Safety number of you ({}) and {}:\n\n",
        number.user, number.contact
    ));
    for line in number.to_string().lines() {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "\nIt covers {}'s devices {} and yours {}.\n",
        number.contact,
        device_list(&number.contact_devices),
        device_list(&number.own_devices)
    ));
    if let Some(epoch) = number.transparent_since_epoch {
        text.push_str(&format!(
            "{}'s devices are published in {}'s key directory (transparent since epoch {epoch}).\n",
            number.contact,
            number.contact.server_name()
        ));
    }
    match &number.verification {
        Verification::Unverified => text.push_str(&format!(
            "Not verified. Compare this number with the one {0} sees (`parley verify {1}`), in person or \
             over a channel you trust; if they match, run `parley verify {0} --mark`.",
            number.contact, number.user
        )),
        Verification::Verified { verified_at } => {
            text.push_str(&format!("Verified on {}.", human_time(*verified_at)));
        }
        Verification::Changed {
            verified_at,
            added,
            removed,
        } => {
            text.push_str(&verified_contact_warning(&number.contact, added, removed));
            text.push_str(&format!(
                "\n(Verified on {}; after comparing again, run `parley verify {} --mark`.)",
                human_time(*verified_at),
                number.contact
            ));
        }
    }
    text
}

/// Rows aligned under a header, two spaces apart.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths = vec![0; header.len()];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = Vec::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push(line.trim_end().to_owned());
    }
    out.join("\n")
}

/// A time given in Unix milliseconds, as UTC RFC 3339 (or the number, if out of range).
pub(crate) fn time_of_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use parley_specs::{DeviceId, GroupId};
    use time::macros::datetime;

    use super::*;
    use parley_sdk::messenger::HistoryMessage;

    fn member(user: &str, device: &str) -> GroupMember {
        GroupMember {
            user_id: UserId::parse(user).expect("user"),
            device_id: DeviceId::parse(device).expect("device"),
        }
    }

    #[test]
    fn events_read_as_sentences() {
        let group = GroupId::parse("g1@a.example").expect("group");
        let message = Event::Message {
            group_id: group.clone(),
            message: HistoryMessage::new(
                3,
                UserId::parse("ann@a.example").expect("user"),
                DeviceId::parse("D1").expect("device"),
                datetime!(2026-01-02 03:04:05 UTC),
                "hi \x1b[2J".into(),
            ),
        };
        assert_eq!(
            event_text(&message),
            "[g1@a.example] 2026-01-02 03:04:05 UTC  #3  ann@a.example: hi \u{fffd}[2J"
        );
        let changed = Event::MembersChanged {
            group_id: group.clone(),
            by: Some(UserId::parse("ann@a.example").expect("user")),
            added: vec![member("ben@a.example", "B1"), member("ben@a.example", "B2")],
            removed: vec![member("cat@a.example", "C1")],
        };
        assert_eq!(
            event_text(&changed),
            "[g1@a.example] ann@a.example added ben@a.example (2 devices) and removed cat@a.example (1 device)"
        );
        let warning = Event::VerifiedContactChanged {
            user: UserId::parse("ben@a.example").expect("user"),
            added: vec![DeviceKey {
                device_id: DeviceId::parse("B3").expect("device"),
                signature_key: "ab".into(),
            }],
            removed: vec![],
        };
        assert!(event_text(&warning).starts_with("WARNING: the devices of ben@a.example changed"));
        assert!(event_text(&warning).contains("new: B3"));
    }

    #[test]
    fn a_refused_leaf_is_named_with_the_device_it_claims_and_why() {
        let refused = Event::LeafRefused {
            group_id: GroupId::parse("g1@a.example").expect("group"),
            seq: 7,
            source: LeafSource::Commit,
            by: Some(member("mal@a.example", "M1")),
            leaves: vec![RefusedLeaf {
                leaf_index: 2,
                claims: Some(member("ben@b.example", "B1")),
                identity: "ben@b.example/B1".into(),
                signature_key: "0123456789abcdef0123".into(),
                reason: "b.example vouches for another signature key for this device\x1b[2J".into(),
            }],
        };
        let text = event_text(&refused);
        assert!(
            text.starts_with("[g1@a.example] WARNING: refused change #7 by mal@a.example/M1"),
            "{text}"
        );
        assert!(text.contains("closed on this device"), "{text}");
        assert!(
            text.contains("leaf 2 claims to be ben@b.example/B1 (key 0123456789abcdef…): b.example vouches"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "escaped: {text}");
    }

    #[test]
    fn tables_align() {
        let text = member_table(&[
            MemberDevice {
                user_id: UserId::parse("ann@a.example").expect("user"),
                device_id: DeviceId::parse("A1").expect("device"),
                signature_key: "0123456789abcdef0123".into(),
                this_device: true,
            },
            MemberDevice {
                user_id: UserId::parse("bo@a.example").expect("user"),
                device_id: DeviceId::parse("B22").expect("device"),
                signature_key: "ff".into(),
                this_device: false,
            },
        ]);
        assert_eq!(
            text,
            "   USER           DEVICE  SIGNATURE KEY\n\
             *  ann@a.example  A1      0123456789abcdef…\n   \
             bo@a.example   B22     ff\n\
             * = this device"
        );
        assert!(group_table(&[]).starts_with("No conversations"));
    }
}
