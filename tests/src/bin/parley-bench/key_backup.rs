//! The key backup of a long history: a device with N messages in its history enables the
//! backup and uploads it; a new device of the account restores it; then one more message
//! is backed up (the incremental case). Prints times and the bytes the server stores.
//!
//! The history is put into the first device's store directly (as received messages would
//! be), not sent through the hub: the backup reads the local history, however it got
//! there, and sending 100,000 messages first would measure the hub instead.

use std::ops::ControlFlow;
use std::time::Instant;

use parley_sdk::backup::{BackupSecret, RecoveryKey};
use parley_sdk::messenger::{HistoryMessage, Messenger};
use parley_sdk::{Client, Trust};
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use parley_specs::{DeviceId, UserId};
use time::OffsetDateTime;

use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct KeyBackupArgs {
    /// Messages in the history backed up.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Characters of each message's text.
    #[arg(long, default_value_t = 80)]
    text_chars: usize,
    /// Database connections of the homeserver.
    #[arg(long, default_value_t = 8)]
    pool: usize,
}

const PASSWORD: &str = "benchmark password 1";
const PASSPHRASE: &str = "benchmark store passphrase";

async fn session(server: &BenchServer, register: bool, dir: &std::path::Path) -> anyhow::Result<Messenger> {
    let mut client = Client::new(server.url.parse()?, Trust::CaPem(server.ca_pem.clone()))?;
    let response = if register {
        client
            .register(&RegisterRequest {
                username: "ann".into(),
                password: PASSWORD.into(),
                device_name: None,
                invite_token: None,
                signature_key: None,
            })
            .await?
    } else {
        client
            .login(&LoginRequest {
                username: "ann".into(),
                password: PASSWORD.into(),
                device_name: None,
                signature_key: None,
                second_factor: None,
            })
            .await?
    };
    client.set_session(&response);
    let store = dir.join(format!("{}.sealed", response.device_id));
    Ok(Messenger::open(client, response.user_id, response.device_id, store, PASSPHRASE).await?)
}

pub async fn run(args: KeyBackupArgs) -> anyhow::Result<()> {
    eprintln!("starting a durable PostgreSQL and a release homeserver ...");
    let server = BenchServer::start(args.pool).await?;
    let dir = tempfile::tempdir()?;
    let mut first = session(&server, true, dir.path()).await?;
    first.sync().await?;
    let group = first.create_group().await?;
    let me = first.user_id().clone();
    let other = UserId::parse(&format!("bob@{}", server.server_name))?;
    let device = DeviceId::parse("BENCHDEVICE1")?;
    let start = OffsetDateTime::now_utc() - time::Duration::days(365);
    let filler: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(args.text_chars)
        .collect();
    let messages: Vec<HistoryMessage> = (1..=args.messages as i64)
        .map(|seq| {
            HistoryMessage::new(
                seq,
                if seq % 2 == 0 { me.clone() } else { other.clone() },
                device.clone(),
                start + time::Duration::seconds(seq * 60),
                format!("{seq} {filler}"),
            )
        })
        .collect();
    eprintln!("filling the history with {} messages ...", args.messages);
    first.import_history_for_benchmarks(&group, messages).await?;

    let key = RecoveryKey::generate();
    let secret = BackupSecret::RecoveryKey(key);
    first.enable_backup(&secret).await?;
    let started = Instant::now();
    let report = first.backup_now().await?;
    let upload = started.elapsed();
    let status = first.backup_status().await?;
    println!(
        "history: {} messages of {} characters, one conversation",
        args.messages, args.text_chars
    );
    println!(
        "full backup:        {:.2} s, {} chunks, {} bytes uploaded ({:.0} messages/s)",
        upload.as_secs_f64(),
        report.uploaded_chunks,
        report.uploaded_bytes,
        args.messages as f64 / upload.as_secs_f64()
    );
    println!(
        "on the server:      {} bytes, {:.1} bytes per message (text alone: {} bytes per message)",
        status.used_bytes,
        status.used_bytes as f64 / args.messages as f64,
        args.text_chars + 7
    );

    first
        .import_history_for_benchmarks(
            &group,
            vec![HistoryMessage::new(
                args.messages as i64 + 1,
                me.clone(),
                device.clone(),
                OffsetDateTime::now_utc(),
                "one more".into(),
            )],
        )
        .await?;
    let started = Instant::now();
    let report = first.backup_now().await?;
    println!(
        "one more message:   {:.3} s, {} chunks ({} bytes) uploaded of {}",
        started.elapsed().as_secs_f64(),
        report.uploaded_chunks,
        report.uploaded_bytes,
        report.total_chunks
    );

    let mut second = session(&server, false, dir.path()).await?;
    let started = Instant::now();
    let restored = second.restore_backup(&secret, |_| ControlFlow::Continue(())).await?;
    let restore = started.elapsed();
    println!(
        "restore (new device): {:.2} s, {} chunks, {} messages added ({:.0} messages/s)",
        restore.as_secs_f64(),
        restored.progress.total,
        restored.messages_added,
        restored.messages_added as f64 / restore.as_secs_f64()
    );
    Ok(())
}
