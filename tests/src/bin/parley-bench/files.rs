//! Encrypted files through two federating homeservers: a file encrypted and uploaded by a
//! user of `a.bench`, then downloaded, checked and decrypted by a user of `b.bench` (who
//! fetches it through b.bench, which streams it from a.bench over federation). Prints
//! upload and download throughput next to a plain `cp` of the same file on the same
//! machine, and the homeservers' peak RSS.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use parley_homeserver::devcerts::DevCa;
use parley_sdk::messenger::Messenger;
use parley_sdk::{Client, Trust};
use parley_specs::client_api::RegisterRequest;
use sha2::{Digest, Sha256};

use crate::server::BenchServer;

#[derive(clap::Args, Clone)]
pub struct FilesArgs {
    /// The file's size in MiB.
    #[arg(long, default_value_t = 100)]
    size_mib: u64,
}

const PASSPHRASE: &str = "a benchmark passphrase";

async fn messenger(url: &str, trust: &Trust, name: &str, dir: &Path) -> anyhow::Result<Messenger> {
    let mut client = Client::new(url.parse()?, trust.clone())?;
    let session = client
        .register(&RegisterRequest {
            username: name.into(),
            password: "a benchmark password 123".into(),
            device_name: None,
            invite_token: None,
            signature_key: None,
        })
        .await?;
    client.set_access_token(session.access_token.clone());
    let path = dir.join(format!("{name}.sealed"));
    let mut m = Messenger::open(client, session.user_id, session.device_id, path, PASSPHRASE).await?;
    m.sync().await?;
    Ok(m)
}

fn write_file(path: &Path, size: u64) -> anyhow::Result<[u8; 32]> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1024 * 1024];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..size {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block)?;
        hasher.update(&block);
    }
    file.flush()?;
    Ok(hasher.finalize().into())
}

fn sha256_of(path: &Path) -> anyhow::Result<[u8; 32]> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

pub async fn run(args: FilesArgs) -> anyhow::Result<()> {
    eprintln!("starting two durable PostgreSQL clusters and two federating release homeservers ...");
    let ca = DevCa::generate("Parley bench federation CA")?;
    let (a, b) = BenchServer::start_federating_pair(8, &ca).await?;
    let trust = Trust::CaPem(ca.cert_pem().into_bytes());
    let work = tempfile::Builder::new()
        .prefix("parley-bench-files")
        .tempdir_in("/tmp")?;
    let mut sender = messenger(&a.url, &trust, "sender", work.path()).await?;
    let mut receiver = messenger(&b.url, &trust, "receiver", work.path()).await?;
    let group = sender.create_group().await?;
    sender.add_members(&group, &[receiver.user_id().clone()]).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !receiver.groups().await?.iter().any(|g| g.group_id == group) {
        anyhow::ensure!(Instant::now() < deadline, "the receiver never joined");
        receiver.receive(Duration::from_millis(500)).await?;
    }

    let size = args.size_mib * 1024 * 1024;
    let original = work.path().join("file.bin");
    let expected = write_file(&original, args.size_mib)?;
    let copy = work.path().join("copy.bin");
    let started = Instant::now();
    let status = std::process::Command::new("cp").arg(&original).arg(&copy).status()?;
    anyhow::ensure!(status.success(), "cp failed");
    let cp_took = started.elapsed();
    std::fs::remove_file(&copy)?;

    let started = Instant::now();
    let sent = sender
        .send_file(&group, &original, None, None, &mut |_, _| {})
        .await
        .context("send the file")?;
    let upload_took = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let history = receiver.history(&group, None).await?;
        if history.iter().any(|m| m.seq == sent.seq) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the file's message never arrived");
        receiver.receive(Duration::from_millis(500)).await?;
    }
    let target = work.path().join("received.bin");
    let started = Instant::now();
    receiver
        .download_file(&group, sent.seq, &target, &mut |_, _| {})
        .await
        .context("download the file")?;
    let download_took = started.elapsed();
    anyhow::ensure!(sha256_of(&target)? == expected, "the received file differs");

    println!(
        "file: {} MiB, chunked ChaCha20-Poly1305, through a.bench -> b.bench",
        args.size_mib
    );
    println!(
        "cp of the same file:                 {:>8.1} MB/s ({:.2} s)",
        mb_per_s(size, cp_took),
        cp_took.as_secs_f64()
    );
    println!(
        "upload (encrypt + send to a.bench):  {:>8.1} MB/s ({:.2} s)",
        mb_per_s(size, upload_took),
        upload_took.as_secs_f64()
    );
    println!(
        "download (b.bench <- a.bench, check, decrypt): {:>8.1} MB/s ({:.2} s)",
        mb_per_s(size, download_took),
        download_took.as_secs_f64()
    );
    let mib = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{} MiB", b / (1024 * 1024)));
    println!(
        "peak RSS: a.bench {}, b.bench {} (now {} and {})",
        mib(a.peak_rss_bytes()),
        mib(b.peak_rss_bytes()),
        mib(a.rss_bytes()),
        mib(b.rss_bytes())
    );
    Ok(())
}
