//! Encrypted files: a 100 MiB file from a.test to members on b.test and c.test (c.test
//! down during the upload), checked by hash everywhere, with the homeservers' peak memory
//! printed; deleted from every server when its message expires; no plaintext on any
//! server; and each refusal with its stable code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parley_homeserver::config::Config;
use parley_sdk::messenger::{Messenger, MessengerError};
use parley_specs::files_api::CreateUploadRequest;
use parley_specs::{ErrorCode, GroupId, ServerName};
use parley_tests::TestServer;
use parley_tests::process::ProcessServer;
use parley_tests::server::{federating_config, free_loopback_addr};
use sha2::{Digest, Sha256};

use crate::helpers::{DELIVERY, ProcessDevice, code, device, joined, sync_until};

/// In the file sent, once per MiB: the plaintext grep looks for it on the servers.
const FILE_MARKER: &[u8] = b"PLAINTEXT-OF-THE-FILE-7f3a9c";
/// The text sent with the file.
const CAPTION: &str = "caption-plaintext-b81e55 for the big file";

/// Writes `size` bytes of pseudo-random content with `FILE_MARKER` at every MiB; returns
/// its SHA-256.
fn write_test_file(path: &Path, size: usize) -> [u8; 32] {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create the file"));
    let mut hasher = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        block[..FILE_MARKER.len()].copy_from_slice(FILE_MARKER);
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("write");
        hasher.update(&block[..n]);
        left -= n;
    }
    file.flush().expect("flush");
    hasher.finalize().into()
}

fn sha256_of(path: &Path) -> [u8; 32] {
    let mut file = std::fs::File::open(path).expect("open the downloaded file");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            return hasher.finalize().into();
        }
        hasher.update(&buf[..n]);
    }
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Files under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Files `grep -a -F -l` finds `needle` in, under `paths` (files or directories).
fn grep(needle: &[u8], paths: &[PathBuf]) -> Vec<String> {
    let output = std::process::Command::new("grep")
        .args(["-r", "-a", "-F", "-l", "--"])
        .arg(std::str::from_utf8(needle).expect("ascii needle"))
        .args(paths)
        .output()
        .expect("run grep");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A plain SQL dump of the database at `url`, written to `out`.
fn dump_database(url: &str, out: &Path) {
    let bin = parley_homeserver::embedded_pg::find_bin_dir().expect("PostgreSQL binaries");
    let status = std::process::Command::new(bin.join("pg_dump"))
        .arg("--data-only")
        .arg("--file")
        .arg(out)
        .arg(url)
        .status()
        .expect("run pg_dump");
    assert!(status.success(), "pg_dump {url}");
}

/// Configurations of a.test, b.test and c.test, each reaching the other two.
async fn three_configs(dirs: [&Path; 3]) -> Vec<Config> {
    let names = ["a.test", "b.test", "c.test"];
    let addrs: Vec<_> = names.iter().map(|_| free_loopback_addr()).collect();
    let mut configs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let peers = names
            .iter()
            .zip(&addrs)
            .filter(|(n, _)| *n != name)
            .map(|(n, a)| (ServerName::parse(n).expect("name"), *a))
            .collect();
        configs.push(federating_config(name, dirs[i], addrs[i], peers, |_| {}).await);
    }
    configs
}

fn no_progress() -> impl FnMut(u64, u64) + Send {
    |_, _| {}
}

#[tokio::test]
async fn a_100_mib_file_reaches_b_and_c_and_disappears_everywhere_when_it_expires() {
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let (stores, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let configs = three_configs([dirs[0].path(), dirs[1].path(), dirs[2].path()]).await;
    let mut servers = Vec::new();
    for (config, dir) in configs.into_iter().zip(&dirs) {
        servers.push(ProcessServer::start(config, dir.path()).await);
    }
    let mut ann = ProcessDevice::register(&servers[0], stores.path(), "ann")
        .await
        .messenger;
    let mut ben = ProcessDevice::register(&servers[1], stores.path(), "ben")
        .await
        .messenger;
    let mut cat = ProcessDevice::register(&servers[2], stores.path(), "cat")
        .await
        .messenger;
    let group = ann.create_group().await.expect("create");
    ann.add_members(&group, &[ben.user_id().clone(), cat.user_id().clone()])
        .await
        .expect("add ben@b.test and cat@c.test");
    joined(&mut ben, &group).await;
    joined(&mut cat, &group).await;

    let size = 100 * 1024 * 1024;
    let original = work.path().join("big.bin");
    let expected = write_test_file(&original, size);
    let before: Vec<u64> = servers
        .iter()
        .map(|s| peak_rss_kib(s.pid().expect("running")))
        .collect();

    // c.test is down while the file is uploaded and sent.
    servers[2].kill();
    let started = Instant::now();
    let sent = ann
        .send_file(&group, &original, Some(CAPTION), Some(EXPIRES_IN), &mut no_progress())
        .await
        .expect("upload and send");
    let uploaded_in = started.elapsed();
    // No server holds the file's plaintext or the caption, in its database or its files
    // (blob store included, while the blob is there; c.test is down).
    let dumps = work.path().join("dumps");
    std::fs::create_dir_all(&dumps).unwrap();
    for (i, server) in servers.iter().enumerate() {
        dump_database(&server.config.database.url, &dumps.join(format!("{i}.sql")));
    }
    let blob_files = files_under(&servers[0].config.files.dir);
    assert_eq!(
        blob_files.len(),
        1,
        "the blob is in a.test's store (its message expires {EXPIRES_IN:?} after it was sent)"
    );
    let mut places: Vec<PathBuf> = dirs.iter().map(|d| d.path().to_owned()).collect();
    places.push(dumps.clone());
    assert_eq!(
        grep(FILE_MARKER, &places),
        Vec::<String>::new(),
        "file plaintext on a server"
    );
    assert_eq!(
        grep(CAPTION.as_bytes(), &places),
        Vec::<String>::new(),
        "message text on a server"
    );
    let dump = std::fs::read_to_string(dumps.join("0.sql")).unwrap();
    assert!(dump.contains("blobs"), "the dump has the blobs table");

    servers[2].restart().await;

    let mut received = Vec::new();
    for (m, out) in [(&mut ben, "ben.bin"), (&mut cat, "cat.bin")] {
        sync_until(m, &group, "the file's message", |h| {
            h.iter().any(|x| x.seq == sent.seq && x.attachment.is_some())
        })
        .await;
        let target = work.path().join(out);
        let started = Instant::now();
        let file = m
            .download_file(&group, sent.seq, &target, &mut no_progress())
            .await
            .expect("download, check and decrypt");
        received.push(started.elapsed());
        assert_eq!(file.size, size as u64);
        assert_eq!(file.text.as_deref(), Some(CAPTION));
        assert_eq!(sha256_of(&target), expected, "{out} is the file sent");
        std::fs::remove_file(&target).expect("remove the copy");
    }
    let peaks: Vec<u64> = servers
        .iter()
        .map(|s| peak_rss_kib(s.pid().expect("running")))
        .collect();
    println!(
        "100 MiB file: upload to a.test {uploaded_in:?}; download through b.test {:?}, through c.test {:?}",
        received[0], received[1]
    );
    for ((name, before), peak) in ["a.test", "b.test", "c.test"].iter().zip(&before).zip(&peaks) {
        println!(
            "peak RSS of {name}: {} MiB (before the transfer: {} MiB)",
            peak / 1024,
            before / 1024
        );
    }
    // c.test was restarted: its peak is that of the new process, which served cat's download.
    for peak in &peaks {
        assert!(
            *peak < 400 * 1024,
            "a homeserver's memory stays far below the file's size times a few: {peaks:?} KiB"
        );
    }

    // When the message expires, the blob goes from a.test; b.test and c.test never kept one.
    let gone = parley_tests::wait_until(EXPIRES_IN + DELIVERY, || async {
        servers[0].count("SELECT count(*) FROM blobs", &[]).await == 0
            && files_under(&servers[0].config.files.dir).is_empty()
    })
    .await;
    assert!(gone, "the blob is deleted from a.test when its message expires");
    for server in &servers {
        assert!(files_under(&server.config.files.dir).is_empty());
        assert_eq!(server.count("SELECT count(*) FROM blobs", &[]).await, 0);
    }
    let code = ben
        .client()
        .download_blob("a.test", &blob_id(&blob_files[0]), Duration::from_secs(30))
        .await
        .map(drop);
    assert!(code.is_err(), "the blob cannot be downloaded any more");
    // The plaintext grep once more, after the scenario.
    for (i, server) in servers.iter().enumerate() {
        dump_database(&server.config.database.url, &dumps.join(format!("{i}.sql")));
    }
    assert_eq!(grep(FILE_MARKER, &places), Vec::<String>::new());
    assert_eq!(grep(CAPTION.as_bytes(), &places), Vec::<String>::new());
}

/// How long the big file's message lives: long enough for the upload and both downloads
/// in a debug build on a loaded machine (they took 40, 34 and 25 s on an idle one).
const EXPIRES_IN: Duration = Duration::from_secs(300);

fn blob_id(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// a.test and b.test (in-process), a.test with a small quota.
async fn pair_with_quota(quota: u64) -> (TestServer, TestServer, tempfile::TempDir, tempfile::TempDir) {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_addr, b_addr) = (free_loopback_addr(), free_loopback_addr());
    let name = |s: &str| ServerName::parse(s).unwrap();
    let mut a_config = federating_config("a.test", a_dir.path(), a_addr, vec![(name("b.test"), b_addr)], |_| {}).await;
    a_config.files.user_quota_bytes = quota;
    a_config.files.max_file_bytes = 1024 * 1024;
    let a = TestServer::start(a_config).await;
    let b = TestServer::start(
        federating_config("b.test", b_dir.path(), b_addr, vec![(name("a.test"), a_addr)], |_| {}).await,
    )
    .await;
    (a, b, a_dir, b_dir)
}

async fn send_small_file(m: &mut Messenger, group: &GroupId, dir: &Path, name: &str, bytes: &[u8]) -> i64 {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    m.send_file(group, &path, None, None, &mut no_progress())
        .await
        .expect("send a file")
        .seq
}

#[tokio::test]
async fn file_refusals_have_stable_codes_and_change_nothing() {
    let (a, b, _a_dir, _b_dir) = pair_with_quota(3 * 1024 * 1024).await;
    let (stores, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ann = device(&a, stores.path(), "ann", true).await;
    let amy = device(&a, stores.path(), "amy", true).await;
    let mut ben = device(&b, stores.path(), "ben", true).await;
    let shared = ann.create_group().await.expect("create");
    ann.add_members(&shared, &[ben.user_id().clone()])
        .await
        .expect("add ben");
    joined(&mut ben, &shared).await;
    let alone = ann.create_group().await.expect("a group of ann alone");

    // Over the file size limit: 413 file_too_large, nothing stored.
    let too_large = CreateUploadRequest {
        group_id: shared.clone(),
        size: 2 * 1024 * 1024,
        expires_at: None,
    };
    assert_eq!(
        code(ann.client().create_upload(&too_large).await),
        ErrorCode::FileTooLarge
    );
    assert_eq!(ErrorCode::FileTooLarge.http_status(), 413);
    // Not a member of the group named: 403 not_a_member.
    let not_member = CreateUploadRequest {
        group_id: shared.clone(),
        size: 10,
        expires_at: None,
    };
    assert_eq!(
        code(amy.client().create_upload(&not_member).await),
        ErrorCode::NotAMember
    );

    // Resumable upload: a PUT at the wrong offset and an early complete are refused, the
    // state says where to continue.
    let upload = ann
        .client()
        .create_upload(&CreateUploadRequest {
            group_id: shared.clone(),
            size: 1000,
            expires_at: None,
        })
        .await
        .expect("create an upload");
    let id = upload.blob_id.clone();
    let state = ann
        .client()
        .put_upload(&id, 0, vec![1u8; 600])
        .await
        .expect("first part");
    assert_eq!(state.offset, 600);
    assert_eq!(
        code(ann.client().put_upload(&id, 0, vec![1u8; 400]).await),
        ErrorCode::UploadOffsetMismatch
    );
    assert_eq!(
        code(ann.client().complete_upload(&id).await),
        ErrorCode::UploadOffsetMismatch
    );
    assert_eq!(ann.client().upload_state(&id).await.expect("state").offset, 600);
    assert_eq!(
        code(ann.client().put_upload(&id, 600, vec![1u8; 401]).await),
        ErrorCode::PayloadTooLarge,
        "past the announced size"
    );
    let state = ann.client().upload_state(&id).await.expect("state");
    assert!(state.offset <= 1000 && !state.complete);
    let rest = 1000 - state.offset as usize;
    ann.client()
        .put_upload(&id, state.offset, vec![1u8; rest])
        .await
        .expect("the rest");
    assert!(ann.client().complete_upload(&id).await.expect("complete").complete);
    // Another user's upload is unknown to amy.
    assert_eq!(code(amy.client().upload_state(&id).await), ErrorCode::UnknownBlob);

    // Over the quota (3 MiB; 1000 bytes used): 507 quota_exceeded.
    let big = CreateUploadRequest {
        group_id: shared.clone(),
        size: 1024 * 1024,
        expires_at: None,
    };
    for _ in 0..2 {
        ann.client().create_upload(&big).await.expect("within the quota");
    }
    assert_eq!(code(ann.client().create_upload(&big).await), ErrorCode::QuotaExceeded);
    assert_eq!(ErrorCode::QuotaExceeded.http_status(), 507);

    // Unknown blobs: 404 unknown_blob, locally and through federation.
    let nobody = "A".repeat(43);
    assert_eq!(
        code(
            ann.client()
                .download_blob("a.test", &nobody, Duration::from_secs(30))
                .await
                .map(drop)
        ),
        ErrorCode::UnknownBlob
    );
    assert_eq!(
        code(
            ben.client()
                .download_blob("a.test", &nobody, Duration::from_secs(30))
                .await
                .map(drop)
        ),
        ErrorCode::UnknownBlob
    );
    assert_eq!(
        code(
            ann.client()
                .download_blob("a.test", "not-an-id", Duration::from_secs(30))
                .await
                .map(drop)
        ),
        ErrorCode::InvalidParam
    );

    // A file in ann's own group: b.test has no member there, so a.test refuses it to
    // b.test (403 blob_forbidden), and amy (no device in it) too.
    let secret = send_small_file(&mut ann, &alone, work.path(), "alone.txt", b"only for ann").await;
    let history = ann.history(&alone, None).await.expect("history");
    let file = history
        .iter()
        .find(|m| m.seq == secret)
        .and_then(|m| m.attachment.clone())
        .unwrap();
    assert_eq!(
        code(
            ben.client()
                .download_blob("a.test", &file.blob_id, Duration::from_secs(30))
                .await
                .map(drop)
        ),
        ErrorCode::BlobForbidden
    );
    assert_eq!(
        code(
            amy.client()
                .download_blob("a.test", &file.blob_id, Duration::from_secs(30))
                .await
                .map(drop)
        ),
        ErrorCode::BlobForbidden
    );
    assert_eq!(ErrorCode::BlobForbidden.http_status(), 403);

    // A blob changed on the server: the recipient refuses it (file_hash_mismatch) and
    // writes nothing where the file was to go.
    let seq = send_small_file(&mut ann, &shared, work.path(), "note.txt", &[42u8; 70_000]).await;
    sync_until(&mut ben, &shared, "the file", |h| h.iter().any(|m| m.seq == seq)).await;
    let ok = work.path().join("ok.txt");
    ben.download_file(&shared, seq, &ok, &mut no_progress())
        .await
        .expect("an intact file downloads");
    assert_eq!(std::fs::read(&ok).unwrap(), vec![42u8; 70_000]);
    let attachment = ann
        .history(&shared, None)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.seq == seq)
        .and_then(|m| m.attachment)
        .unwrap();
    let stored = files_under(&a.config.files.dir)
        .into_iter()
        .find(|p| blob_id(p) == attachment.blob_id)
        .expect("the blob in a.test's store");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let target = work.path().join("tampered.txt");
    let err = ben
        .download_file(&shared, seq, &target, &mut no_progress())
        .await
        .expect_err("a changed blob is refused");
    assert!(matches!(err, MessengerError::FileRefused(_)), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::FileHashMismatch));
    assert!(!target.exists() && !work.path().join("tampered.txt.part").exists());
    // A disappearing file goes from the blob store when its message expires.
    let path = work.path().join("brief.txt");
    std::fs::write(&path, b"gone soon").unwrap();
    let brief = ann
        .send_file(&shared, &path, None, Some(Duration::from_secs(2)), &mut no_progress())
        .await
        .expect("send a disappearing file")
        .seq;
    let brief_id = ann
        .history(&shared, None)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.seq == brief)
        .and_then(|m| m.attachment)
        .unwrap()
        .blob_id;
    assert!(files_under(&a.config.files.dir).iter().any(|p| blob_id(p) == brief_id));
    let swept = parley_tests::wait_until(DELIVERY, || async {
        !files_under(&a.config.files.dir).iter().any(|p| blob_id(p) == brief_id)
    })
    .await;
    assert!(swept, "the expired file's blob is deleted");
    assert_eq!(code(ann.client().upload_state(&brief_id).await), ErrorCode::UnknownBlob);
    // Text-only messages have no file.
    let text = ann.send_text(&shared, "no file here", None).await.unwrap().seq;
    sync_until(&mut ben, &shared, "the text", |h| h.iter().any(|m| m.seq == text)).await;
    assert!(matches!(
        ben.download_file(&shared, text, &target, &mut no_progress()).await,
        Err(MessengerError::NoFile { .. })
    ));
    // A file deleted for everyone is deleted from its origin's blob store too.
    ann.delete_for_everyone(&alone, secret)
        .await
        .expect("delete the file for everyone");
    assert!(
        !files_under(&a.config.files.dir)
            .iter()
            .any(|p| blob_id(p) == file.blob_id),
        "the deleted message's blob is gone"
    );
    assert_eq!(
        code(ann.client().upload_state(&file.blob_id).await),
        ErrorCode::UnknownBlob
    );
}
