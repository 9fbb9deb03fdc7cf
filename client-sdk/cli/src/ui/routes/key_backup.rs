//! The key backup: its status, turning it on (the recovery key is answered once, for the
//! web app to show with a "have you saved it" confirmation) and off, and a restore on a
//! new device with progress over the event stream.

use std::ops::ControlFlow;

use parley_sdk::backup::{BackupSecret, BackupStatus, RecoveryKey};

use super::{Answer, Data, messenger};
use crate::ui::api::{BackupEnabled, BackupStatusView, Empty, RestoreRequest, RestoreResult, ServerEvent};

fn view(status: BackupStatus) -> BackupStatusView {
    BackupStatusView {
        enabled: status.enabled,
        key_kind: status.key_kind.map(str::to_owned),
        last_backup_at: status.last_backup_at,
        chunks: status.chunks,
        used_bytes: status.used_bytes,
        quota_bytes: status.quota_bytes,
        pending_changes: status.pending_changes,
    }
}

pub(super) async fn status(ui: Data) -> Answer<BackupStatusView> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    Ok(actix_web::web::Json(view(m.backup_status().await?)))
}

/// Turns the backup on with a new recovery key and backs everything up.
pub(super) async fn enable(ui: Data) -> Answer<BackupEnabled> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let key = RecoveryKey::generate();
    let recovery_key = key.display();
    m.enable_backup(&BackupSecret::RecoveryKey(key)).await?;
    m.backup_now().await?;
    let status = view(m.backup_status().await?);
    Ok(actix_web::web::Json(BackupEnabled { recovery_key, status }))
}

pub(super) async fn disable(ui: Data) -> Answer<Empty> {
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    m.disable_backup().await?;
    Ok(actix_web::web::Json(Empty {}))
}

/// Restores the account's backup, sending `restore` events as chunks are done, then
/// joins the account's conversations.
pub(super) async fn restore(ui: Data, body: actix_web::web::Json<RestoreRequest>) -> Answer<RestoreResult> {
    let secret = BackupSecret::from_text(body.recovery_key.trim());
    let mut state = ui.state.lock().await;
    let m = messenger(&mut state)?;
    let hub = &ui.hub;
    let report = m
        .restore_backup(&secret, |p| {
            hub.send(&ServerEvent::Restore {
                done: p.done,
                total: p.total,
            });
            ControlFlow::Continue(())
        })
        .await?;
    let joined = m.join_own_conversations().await?;
    Ok(actix_web::web::Json(RestoreResult {
        conversations: report.conversations,
        messages_added: report.messages_added,
        resumed: report.progress.resumed,
        joined: joined.len(),
    }))
}
