//! `parley backup …` and `parley restore`: the end-to-end encrypted key backup of this
//! account's history on its homeserver (see `parley_sdk::backup`).

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::Path;

use anyhow::{Context, bail};
use parley_sdk::backup::{BackupSecret, MIN_BACKUP_PASSPHRASE_CHARS, RecoveryKey, RestoreProgress};
use parley_sdk::messenger::{Event, Messenger};
use serde_json::json;

use crate::BackupCommand;
use crate::commands::Ctx;
use crate::messaging::open;
use crate::messaging_output::event_text;
use crate::password::{PasswordSource, read_password};

pub(crate) async fn backup(ctx: &Ctx, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Enable {
            passphrase,
            backup_passphrase_file,
            recovery_key_file,
        } => {
            enable(
                ctx,
                passphrase,
                backup_passphrase_file.as_deref(),
                recovery_key_file.as_deref(),
            )
            .await
        }
        BackupCommand::Now => now(ctx).await,
        BackupCommand::Status => status(ctx).await,
        BackupCommand::Disable => disable(ctx).await,
    }
}

async fn enable(
    ctx: &Ctx,
    use_passphrase: bool,
    passphrase_file: Option<&Path>,
    key_file: Option<&Path>,
) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let (secret, shown) = if use_passphrase || passphrase_file.is_some() {
        let passphrase = read_password(PasswordSource {
            file: passphrase_file,
            flag: "--backup-passphrase-file",
            prompt: "Backup passphrase (at least 12 characters; it is your only way back in)",
            confirm: true,
        })?;
        (BackupSecret::Passphrase(passphrase), None)
    } else {
        let key = RecoveryKey::generate();
        let shown = key.display();
        (BackupSecret::RecoveryKey(key), Some(shown))
    };
    messenger.enable_backup(&secret).await?;
    if let (Some(shown), Some(file)) = (&shown, key_file) {
        parley_private_file::write(file, format!("{shown}\n").as_bytes())
            .with_context(|| format!("cannot write the recovery key to {}", file.display()))?;
    }
    if let Some(shown) = &shown
        && !ctx.out.json
    {
        println!(
            "Your recovery key (shown this once; write it down or keep it in a password manager):\n\n    {shown}\n\n\
             With it and your password you get your history back on a new device (parley restore).\n\
             Anyone who has it and can sign in to your account can read your backed-up history."
        );
        if std::io::stdin().is_terminal() {
            confirm_saved(shown)?;
        }
    }
    let report = messenger.backup_now().await?;
    ctx.out.print(
        &json!({"enabled": true, "recovery_key": shown, "backup": report}),
        || {
            format!(
                "Backup enabled: {} chunks ({} bytes) uploaded.",
                report.uploaded_chunks, report.uploaded_bytes
            )
        },
    )
}

/// Asks for the last group of the key, so that nobody clicks through without saving it.
fn confirm_saved(shown: &str) -> anyhow::Result<()> {
    let last = shown.rsplit('-').next().unwrap_or_default();
    for _ in 0..3 {
        eprint!("Have you saved it? Type its last four characters to confirm: ");
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if answer.trim().eq_ignore_ascii_case(last) {
            return Ok(());
        }
        eprintln!("That is not the end of the key shown above.");
    }
    bail!(
        "not confirmed; the backup is enabled with this key: run `parley backup disable` and enable it again for a new one"
    )
}

async fn now(ctx: &Ctx) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let report = messenger.backup_now().await?;
    ctx.out.print(&report, || {
        let mut text = format!(
            "Backed up: {} of {} chunks uploaded ({} bytes).",
            report.uploaded_chunks, report.total_chunks, report.uploaded_bytes
        );
        if report.merged_chunks > 0 {
            text.push_str(&format!(
                " {} chunks from your other devices merged.",
                report.merged_chunks
            ));
        }
        text
    })
}

async fn status(ctx: &Ctx) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let status = messenger.backup_status().await?;
    ctx.out.print(&status, || {
        let state = if status.enabled {
            format!(
                "Backup: enabled on this device ({}).",
                status.key_kind.unwrap_or("recovery_key").replace('_', " ")
            )
        } else {
            "Backup: not enabled on this device (parley backup enable).".to_owned()
        };
        let last = status
            .last_backup_at
            .map_or_else(|| "never".to_owned(), parley_sdk::messenger::human_time);
        format!(
            "{state}\nLast backup from this device: {last}{}\nOn the server: {} chunks, {} of {} bytes ({:.1}%).",
            if status.pending_changes { " (changes since)" } else { "" },
            status.chunks,
            status.used_bytes,
            status.quota_bytes,
            100.0 * status.used_bytes as f64 / status.quota_bytes.max(1) as f64
        )
    })
}

async fn disable(ctx: &Ctx) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    messenger.disable_backup().await?;
    ctx.out
        .ok(|| "Backup disabled; the backup on the server is deleted. Your recovery key opens nothing now.".to_owned())
}

/// `parley restore`.
pub(crate) async fn restore(ctx: &Ctx, key_file: Option<&Path>) -> anyhow::Result<()> {
    let mut messenger = open(ctx).await?;
    let text = read_password(PasswordSource {
        file: key_file,
        flag: "--recovery-key-file",
        prompt: "Recovery key (or backup passphrase)",
        confirm: false,
    })?;
    let secret = BackupSecret::from_text(&text);
    if let BackupSecret::Passphrase(p) = &secret
        && p.chars().count() < MIN_BACKUP_PASSPHRASE_CHARS
    {
        bail!("not a recovery key (48 characters A-Z and 2-7, in groups of four), nor a backup passphrase");
    }
    let json = ctx.out.json;
    let report = messenger
        .restore_backup(&secret, |p: &RestoreProgress| {
            if !json {
                eprint!("\rRestoring: {}/{} chunks", p.done, p.total);
            }
            ControlFlow::Continue(())
        })
        .await;
    if !json {
        eprintln!();
    }
    let report = report?;
    let joined = join(&mut messenger).await?;
    ctx.out.print(&json!({"restore": report, "joined": joined}), || {
        let mut text = format!(
            "Restored {} conversations, {} messages added to this device's history.",
            report.conversations, report.messages_added
        );
        if report.progress.resumed > 0 {
            text.push_str(&format!(
                " (Continued an interrupted restore: {} chunks were done already.)",
                report.progress.resumed
            ));
        }
        if !joined.is_empty() {
            text.push_str(&format!("\nJoined {} conversations from this device.", joined.len()));
        }
        text
    })
}

/// Joins the conversations this user is in (the new-device flow), printing what failed.
async fn join(messenger: &mut Messenger) -> anyhow::Result<Vec<String>> {
    let joined = messenger.join_own_conversations().await?;
    for event in messenger.sync().await? {
        if matches!(event, Event::JoinFailed { .. }) {
            eprintln!("{}", event_text(&event));
        }
    }
    Ok(joined.iter().map(|g| g.to_string()).collect())
}

/// After a command that changed the history: backs up when enabled. A failure is only a
/// warning (the command itself succeeded; the next backup catches up).
pub(crate) async fn after_change(messenger: &mut Messenger) {
    if let Err(e) = messenger.backup_if_enabled().await {
        eprintln!("warning: backup failed (the next one catches up): {e}");
    }
}
