//! The messaging commands: `group …`, `send`, `reply`, `react`, `edit`, `listen`,
//! `sync`, `history`, `export`, `verify`, `delete`. Each opens the profile's message store (its passphrase from
//! `--passphrase-file`, `PARLEY_PASSPHRASE_FILE` or a prompt), does its work through the
//! SDK's [`Messenger`], and prints the result.
//!
//! Commands that change something (`group create|add|remove|leave`, `send`, `reply`,
//! `react`, `edit`, `delete --for-everyone`) first
//! process the inbox, so they act on the group as it is. `group list|members`,
//! `history`, `export` and `delete` read this device's store only (offline); `parley
//! sync` or a running `parley listen` fetches what is new.

use std::io::Read as _;
use std::time::Duration;

use anyhow::{Context, bail};
use parley_sdk::Error;
use parley_sdk::messenger::{Event, ExportFormat, MAX_TEXT_BYTES, Messenger, MessengerError, history_text};
use parley_specs::{ErrorCode, GroupId, UserId};

use crate::commands::{Ctx, logged_in_client};
use crate::messaging_output::{
    add_summary, event_text, group_table, member_table, safety_text, settings_text, users_and_devices,
};
use crate::output::printable;
use crate::password::{PasswordSource, read_password};
use crate::{ExportFormatArg, GroupCommand};

/// How long one `listen` wait lasts before checking again (well below request timeouts).
const LISTEN_WAIT: Duration = Duration::from_secs(20);
/// Longest pause between reconnection attempts of `listen`.
const LISTEN_MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(crate) async fn group(ctx: &Ctx, command: GroupCommand) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    match command {
        GroupCommand::Create => {
            let group_id = messenger.create_group().await?;
            ctx.out.print(&serde_json::json!({ "group_id": group_id }), || {
                format!("Created group {group_id}. Add people with `parley group add {group_id} USER…`.")
            })
        }
        GroupCommand::Add { group, users } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let users = parse_users(messenger.user_id(), &users)?;
            let outcome = messenger.add_members(&group_id, &users).await?;
            ctx.out.print(&outcome, || add_summary(&outcome))
        }
        GroupCommand::Remove { group, users } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let users = parse_users(messenger.user_id(), &users)?;
            let outcome = messenger.remove_members(&group_id, &users).await?;
            ctx.out.print(&outcome, || {
                if outcome.removed.is_empty() {
                    format!("They were removed from {group_id} already.")
                } else {
                    format!("Removed {} from {group_id}.", users_and_devices(&outcome.removed))
                }
            })
        }
        GroupCommand::Leave { group } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let outcome = messenger.leave_group(&group_id).await?;
            ctx.out.print(&outcome, || {
                let mut text = format!(
                    "Left {group_id}: deleted the conversation and its {} message(s) from this device.",
                    outcome.messages_deleted
                );
                if outcome.announced {
                    text.push_str(
                        " The hub delivers nothing more of it to your devices; the other members' devices \
                         remove yours from the group when they next connect.",
                    );
                }
                text
            })
        }
        GroupCommand::Members { group } => {
            let group_id = resolve_group(&mut messenger, &group).await?;
            let devices = messenger.members(&group_id).await?;
            ctx.out.print(&devices, || member_table(&devices))
        }
        GroupCommand::List => {
            let groups = messenger.groups().await?;
            ctx.out.print(&groups, || group_table(&groups))
        }
        GroupCommand::Rename { group, name } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let settings = messenger.rename_group(&group_id, &name).await?;
            ctx.out
                .print(&settings, || format!("Renamed {group_id} to \"{}\".", settings.name))
        }
        GroupCommand::Topic { group, topic } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let settings = messenger.set_topic(&group_id, &topic).await?;
            ctx.out.print(&settings, || {
                format!("Set the topic of {group_id} to \"{}\".", settings.topic)
            })
        }
        GroupCommand::Timer { group, duration } => {
            let timer = match duration.as_str() {
                "off" => None,
                raw => Some(parse_duration(raw)?),
            };
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let settings = messenger.set_group_timer(&group_id, timer).await?;
            ctx.out.print(&settings, || match settings.timer_secs {
                Some(secs) => format!("Messages in {group_id} now disappear after {secs} s."),
                None => format!("Messages in {group_id} no longer disappear."),
            })
        }
        GroupCommand::Admins { group } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let settings = messenger.group_settings(&group_id).await?;
            ctx.out.print(&settings, || settings_text(&settings))
        }
        GroupCommand::Promote { group, user } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let users = parse_users(messenger.user_id(), std::slice::from_ref(&user))?;
            let settings = messenger.promote(&group_id, &users[0]).await?;
            ctx.out
                .print(&settings, || format!("{} is now an admin of {group_id}.", users[0]))
        }
        GroupCommand::Demote { group, user } => {
            sync_quietly(&mut messenger).await?;
            let group_id = resolve_group(&mut messenger, &group).await?;
            let users = parse_users(messenger.user_id(), std::slice::from_ref(&user))?;
            let settings = messenger.demote(&group_id, &users[0]).await?;
            ctx.out.print(&settings, || {
                format!("{} is no longer an admin of {group_id}.", users[0])
            })
        }
    }
}

pub(crate) async fn send(ctx: &Ctx, group: &str, text: &str, expires: Option<&str>) -> anyhow::Result<()> {
    let expires_in = expires.map(parse_duration).transpose()?;
    let text = text_argument(ctx, text)?;
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let sent = messenger.send_text(&group_id, &text, expires_in).await?;
    ctx.out.print(&sent, || {
        with_expiry(format!("Sent #{} to {group_id}.", sent.seq), sent.expires_at)
    })?;
    // The hub has acknowledged the send: the backup goes after it, never before.
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

/// A progress line on stderr, rewritten in place, when stderr is a terminal and the
/// output is for people; nothing otherwise.
fn progress_line(ctx: &Ctx, what: String) -> impl FnMut(u64, u64) + Send {
    use std::io::{IsTerminal, Write};
    let shown = !ctx.out.json && std::io::stderr().is_terminal();
    let mut last = None;
    move |done: u64, total: u64| {
        if !shown {
            return;
        }
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        if last == Some(percent) {
            return;
        }
        last = Some(percent);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{what}: {percent:>3}% ({:.1} of {:.1} MiB)",
            mib(done),
            mib(total)
        );
        if done >= total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

pub(crate) async fn send_file(
    ctx: &Ctx,
    group: &str,
    text: Option<&str>,
    file: &std::path::Path,
    expires: Option<&str>,
) -> anyhow::Result<()> {
    let expires_in = expires.map(parse_duration).transpose()?;
    let text = text.map(|t| text_argument(ctx, t)).transpose()?;
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let mut progress = progress_line(ctx, format!("Uploading {}", file.display()));
    let sent = messenger
        .send_file(&group_id, file, text.as_deref(), expires_in, &mut progress)
        .await?;
    ctx.out.print(&sent, || {
        with_expiry(
            format!("Sent #{} (file {}) to {group_id}.", sent.seq, file.display()),
            sent.expires_at,
        )
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

pub(crate) async fn download(ctx: &Ctx, group: &str, seq: i64, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let attachment = messenger
        .history(&group_id, None)
        .await?
        .into_iter()
        .find(|m| m.seq == seq)
        .and_then(|m| m.attachment)
        .ok_or_else(|| anyhow::anyhow!("message #{seq} of {group_id} has no file (see `parley history`)"))?;
    // Only the file name the sender gave, never a path of theirs.
    let name = std::path::Path::new(&attachment.name)
        .file_name()
        .map(std::path::PathBuf::from)
        .filter(|n| n.as_os_str() != ".." && n.as_os_str() != ".")
        .unwrap_or_else(|| std::path::PathBuf::from("download"));
    let target = match out {
        Some(path) if path.is_dir() => path.join(&name),
        Some(path) => path.to_owned(),
        None => name,
    };
    let mut progress = progress_line(ctx, format!("Downloading {}", target.display()));
    let file = messenger.download_file(&group_id, seq, &target, &mut progress).await?;
    #[derive(serde::Serialize)]
    struct Downloaded<'a> {
        path: &'a std::path::Path,
        size: u64,
        media_type: &'a str,
        sha256: &'a str,
    }
    let report = Downloaded {
        path: &target,
        size: file.size,
        media_type: &file.media_type,
        sha256: &file.sha256,
    };
    ctx.out.print(&report, || {
        format!("Saved {} ({} bytes, {}).", target.display(), file.size, file.media_type)
    })
}

pub(crate) async fn listen(ctx: &Ctx) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    eprintln!(
        "Listening as {} (device {}); Ctrl-C to stop.",
        messenger.user_id(),
        messenger.device_id()
    );
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut backoff = Duration::from_secs(1);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            received = messenger.receive(LISTEN_WAIT) => match received {
                Ok(events) => {
                    backoff = Duration::from_secs(1);
                    for event in &events {
                        print_event(ctx, event)?;
                    }
                }
                Err(err) if worth_retrying(&err) => {
                    eprintln!("warning: {}; retrying in {} s", printable(&err.to_string()), backoff.as_secs());
                    tokio::select! {
                        _ = &mut ctrl_c => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(LISTEN_MAX_BACKOFF);
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    Ok(())
}

pub(crate) async fn sync(ctx: &Ctx) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let events = messenger.sync().await?;
    ctx.out.print(&events, || {
        if events.is_empty() {
            "Nothing new.".to_owned()
        } else {
            events.iter().map(event_text).collect::<Vec<_>>().join("\n")
        }
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

pub(crate) async fn history(ctx: &Ctx, group: &str, search: Option<&str>) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let messages = messenger.history(&group_id, search).await?;
    // The name and topic head the human output (`parley group admins` shows them in JSON).
    let heading = match messenger.group_settings(&group_id).await {
        Ok(s) if !s.name.is_empty() || !s.topic.is_empty() => {
            let topic = if s.topic.is_empty() {
                String::new()
            } else {
                format!(" — {}", printable(&s.topic))
            };
            format!("# {}{topic}\n", printable(&s.name))
        }
        _ => String::new(),
    };
    ctx.out.print(&messages, || {
        heading.clone()
            + &if messages.is_empty() {
                match search {
                    Some(word) => format!("No message of {group_id} contains \"{}\".", printable(word)),
                    None => format!("No messages in {group_id} on this device."),
                }
            } else {
                history_text(&messages)
            }
    })
}

pub(crate) async fn export(ctx: &Ctx, group: &str, format: Option<ExportFormatArg>) -> anyhow::Result<()> {
    let format = match format {
        Some(ExportFormatArg::Json) => ExportFormat::Json,
        Some(ExportFormatArg::Text) => ExportFormat::Text,
        None if ctx.out.json => ExportFormat::Json,
        None => ExportFormat::Text,
    };
    let mut messenger = open(ctx).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let exported = messenger.export(&group_id, format).await?;
    println!("{}", exported.trim_end());
    Ok(())
}

pub(crate) async fn verify(ctx: &Ctx, user: &str, mark: bool) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    // The number comes from the group trees: bring them up to date when possible.
    if let Err(err) = sync_quietly(&mut messenger).await {
        eprintln!(
            "warning: could not fetch news from the server ({}); the number is from this device's current view",
            printable(&format!("{err:#}"))
        );
    }
    let contact = parse_user(messenger.user_id(), user)?;
    let number = if mark {
        messenger.mark_verified(&contact).await?
    } else {
        messenger.safety_number(&contact).await?
    };
    ctx.out.print(&number, || safety_text(&number, mark))
}

pub(crate) async fn published_devices(ctx: &Ctx, user: &str) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let user = parse_user(messenger.user_id(), user)?;
    let published = messenger.published_devices(&user).await?;
    ctx.out.print(&published, || {
        let mut text = format!("{} has {} published device(s)", published.user, published.devices.len());
        match published.since_epoch {
            Some(epoch) => text.push_str(&format!(
                ", as published in epoch {epoch} of {}'s key directory:",
                published.user.server_name()
            )),
            None => text.push_str(" (their server keeps no key directory):"),
        }
        for device in &published.devices {
            text.push_str(&format!(
                "\n  {}  key {}",
                device.device_id,
                hex::encode(device.signature_key.as_slice())
            ));
        }
        text
    })
}

pub(crate) async fn reply(ctx: &Ctx, group: &str, seq: i64, text: &str, expires: Option<&str>) -> anyhow::Result<()> {
    let expires_in = expires.map(parse_duration).transpose()?;
    let text = text_argument(ctx, text)?;
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let sent = messenger.send_reply(&group_id, seq, &text, expires_in).await?;
    ctx.out.print(&sent, || {
        with_expiry(
            format!("Sent #{} to {group_id}, replying to #{seq}.", sent.seq),
            sent.expires_at,
        )
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

pub(crate) async fn react(ctx: &Ctx, group: &str, seq: i64, emoji: &str, remove: bool) -> anyhow::Result<()> {
    // Refused before the passphrase is asked for.
    parley_sdk::messenger::check_emoji(emoji).map_err(MessengerError::InvalidReaction)?;
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let sent = if remove {
        messenger.react(&group_id, seq, emoji, true).await?
    } else {
        messenger.toggle_reaction(&group_id, seq, emoji).await?
    };
    let me = messenger.user_id().clone();
    let reacted = sent.message.as_ref().is_some_and(|m| m.reacted(&me, emoji));
    ctx.out.print(&sent, || {
        let emoji = printable(emoji);
        if reacted {
            format!("Reacted {emoji} to #{seq} in {group_id}.")
        } else {
            format!("Took your {emoji} back from #{seq} in {group_id}.")
        }
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

pub(crate) async fn edit(ctx: &Ctx, group: &str, seq: i64, text: &str) -> anyhow::Result<()> {
    let text = text_argument(ctx, text)?;
    let mut messenger = open(ctx).await?;
    sync_quietly(&mut messenger).await?;
    let group_id = resolve_group(&mut messenger, group).await?;
    let sent = messenger.edit_message(&group_id, seq, &text).await?;
    ctx.out.print(&sent, || {
        format!("Edited #{seq} in {group_id} for everyone (sent as #{}).", sent.seq)
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

/// `line`, and when the message disappears if it does.
fn with_expiry(line: String, expires_at: Option<time::OffsetDateTime>) -> String {
    match expires_at {
        Some(at) => format!("{line} It disappears at {}.", parley_sdk::messenger::human_time(at)),
        None => line,
    }
}

/// A message text argument: itself, or stdin for `-`.
fn text_argument(ctx: &Ctx, text: &str) -> anyhow::Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    if ctx.passphrase_file.as_deref() == Some(std::path::Path::new("-")) {
        bail!("the message and --passphrase-file cannot both read stdin");
    }
    read_stdin_text()
}

pub(crate) async fn delete(ctx: &Ctx, group: &str, seq: i64, for_everyone: bool) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    if for_everyone {
        sync_quietly(&mut messenger).await?;
        let group_id = resolve_group(&mut messenger, group).await?;
        let sent = messenger.delete_for_everyone(&group_id, seq).await?;
        ctx.out.print(&sent, || {
            format!(
                "Deleted message #{seq} of {group_id} for everyone: removed here, and every member's devices \
                 remove it when they receive the request (#{}).",
                sent.seq
            )
        })?;
        crate::key_backup::after_change(&mut messenger).await;
        return Ok(());
    }
    let group_id = resolve_group(&mut messenger, group).await?;
    messenger.delete_message(&group_id, seq).await?;
    ctx.out.ok(|| {
        format!("Deleted message #{seq} from this device's history of {group_id}. Other devices keep their copies.")
    })?;
    crate::key_backup::after_change(&mut messenger).await;
    Ok(())
}

/// The profile's messenger; creates its store (asking for a new passphrase) at first use.
pub(crate) async fn open(ctx: &Ctx) -> anyhow::Result<Messenger> {
    let (client, session) = logged_in_client(&ctx.profile)?;
    let path = ctx.profile.messenger_store();
    let new = !Messenger::store_exists(&path);
    let passphrase = read_password(PasswordSource {
        file: ctx.passphrase_file.as_deref(),
        flag: "--passphrase-file",
        prompt: if new {
            "New passphrase for this device's message store"
        } else {
            "Passphrase of the message store"
        },
        confirm: new,
    })?;
    Ok(Messenger::open(client, session.user_id, session.device_id, path, &passphrase).await?)
}

/// Processes the inbox before acting; only warnings are shown (the messages are in the
/// history, and `parley sync` or `listen` shows everything).
async fn sync_quietly(messenger: &mut Messenger) -> anyhow::Result<()> {
    for event in messenger.sync().await? {
        if let Event::VerifiedContactChanged { .. } = &event {
            eprintln!("{}", event_text(&event));
        }
    }
    Ok(())
}

fn print_event(ctx: &Ctx, event: &Event) -> anyhow::Result<()> {
    if ctx.out.json {
        println!("{}", serde_json::to_string(event)?);
    } else {
        println!("{}", event_text(event));
    }
    Ok(())
}

/// Errors `listen` waits out: the server unreachable or busy, the store held by another
/// process for a while.
fn worth_retrying(err: &MessengerError) -> bool {
    match err {
        MessengerError::Api(Error::Transport { .. })
        | MessengerError::StoreBusy { .. }
        | MessengerError::DirectoryUnavailable { .. } => true,
        MessengerError::Api(e) => matches!(
            e.code(),
            Some(
                ErrorCode::Unavailable | ErrorCode::DatabaseUnavailable | ErrorCode::RateLimited | ErrorCode::Internal
            )
        ),
        _ => false,
    }
}

/// A group of this device from its id or the start of its id.
async fn resolve_group(messenger: &mut Messenger, raw: &str) -> anyhow::Result<GroupId> {
    if raw.is_empty() {
        bail!("which group? give its id (`parley group list` shows them)");
    }
    let groups = messenger.groups().await?;
    if let Ok(id) = GroupId::parse(raw)
        && groups.iter().any(|g| g.group_id == id)
    {
        return Ok(id);
    }
    let matching: Vec<&GroupId> = groups
        .iter()
        .map(|g| &g.group_id)
        .filter(|id| id.as_str().starts_with(raw))
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => match GroupId::parse(raw) {
            Ok(id) => Err(MessengerError::UnknownGroup(id).into()),
            Err(_) => bail!(
                "no conversation on this device matches \"{}\" (`parley group list` shows them)",
                printable(raw)
            ),
        },
        several => bail!(
            "\"{}\" matches several conversations: {}",
            printable(raw),
            several.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn parse_users(me: &UserId, raw: &[String]) -> anyhow::Result<Vec<UserId>> {
    raw.iter().map(|r| parse_user(me, r)).collect()
}

/// `bob@server`, or `bob` on this user's server.
fn parse_user(me: &UserId, raw: &str) -> anyhow::Result<UserId> {
    let full = if raw.contains('@') {
        raw.to_owned()
    } else {
        format!("{raw}@{}", me.server_name())
    };
    UserId::parse(&full).map_err(|e| anyhow::anyhow!("invalid user \"{}\": {e}", printable(raw)))
}

/// `30s`, `10m`, `2h`, `7d`, or sums like `1h30m`.
fn parse_duration(raw: &str) -> anyhow::Result<Duration> {
    let invalid = || {
        anyhow::anyhow!(
            "invalid duration \"{}\": use e.g. 30s, 10m, 2h, 7d or 1h30m",
            printable(raw)
        )
    };
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let n: u64 = number.parse().map_err(|_| invalid())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(invalid)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total))
}

/// The message text from stdin, without its final line break.
fn read_stdin_text() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_TEXT_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .context("cannot read the message from stdin (it must be UTF-8 text)")?;
    if text.len() > MAX_TEXT_BYTES {
        bail!("the message on stdin is longer than {MAX_TEXT_BYTES} bytes");
    }
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() -> anyhow::Result<()> {
        assert_eq!(parse_duration("30s")?, Duration::from_secs(30));
        assert_eq!(parse_duration("10m")?, Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m")?, Duration::from_secs(5400));
        assert_eq!(parse_duration("7d")?, Duration::from_secs(7 * 86_400));
        for bad in ["", "10", "m", "0s", "1x", "-5m", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn users_default_to_this_server() -> anyhow::Result<()> {
        let me = UserId::parse("ann@chat.example:8443")?;
        assert_eq!(parse_user(&me, "bob")?.as_str(), "bob@chat.example:8443");
        assert_eq!(parse_user(&me, "bob@other.example")?.as_str(), "bob@other.example");
        assert!(parse_user(&me, "Bob").is_err());
        Ok(())
    }
}
