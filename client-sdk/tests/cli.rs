//! The `parley` binary against a real homeserver, as a person or script would use it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use parley_tests::TestServer;

struct Cli<'a> {
    home: &'a Path,
    server: &'a TestServer,
}

impl Cli<'_> {
    /// Runs `parley` with a fresh environment (no inherited PARLEY_* settings).
    async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--home")
            .arg(self.home)
            .args(args)
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || command.output().expect("run parley")).await.expect("join")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "parley {args:?} failed: {stderr}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all).await).expect("JSON output")
    }
}

#[tokio::test]
async fn register_login_devices_logout() {
    let server = TestServer::spawn().await;
    let home = tempfile::tempdir().expect("tempdir");
    let cli = Cli { home: home.path(), server: &server };
    let password_file = home.path().join("password");
    std::fs::write(&password_file, "a long enough password\n").expect("write");
    let pw = password_file.to_str().expect("utf-8");
    let ca = server.ca_file();
    let ca = ca.to_str().expect("utf-8");

    let out = cli
        .ok(&["--server", &server.url, "--ca-file", ca, "register", "alice", "--password-file", pw, "--device-name", "laptop"])
        .await;
    assert!(out.contains("Registered alice@test.parley"), "{out}");

    // The session file is private and holds the token; the CLI never prints the token.
    let session_file = home.path().join("profiles/default/session.json");
    let mode = std::fs::metadata(&session_file).expect("session file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(session_file.parent().expect("dir")).expect("dir").permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&session_file).expect("read")).expect("json");
    let token = saved["access_token"].as_str().expect("token");
    assert!(!out.contains(token));

    let me = cli.json(&["whoami"]).await;
    assert_eq!(me["user_id"], "alice@test.parley");
    let laptop = me["device_id"].as_str().expect("device").to_owned();

    // A second profile is a second device.
    cli.ok(&["--profile", "phone", "--server", &server.url, "--ca-file", ca, "login", "alice", "--password-file", pw])
        .await;
    let devices = cli.json(&["devices", "list"]).await;
    let devices = devices["devices"].as_array().expect("array");
    assert_eq!(devices.len(), 2);
    let phone = devices.iter().find(|d| d["device_id"] != laptop.as_str()).expect("phone")["device_id"]
        .as_str()
        .expect("id")
        .to_owned();

    let table = cli.ok(&["devices", "list"]).await;
    assert!(table.contains(&format!("* {laptop}")), "{table}");

    let renamed = cli.json(&["devices", "rename", &phone, "Alice's phone"]).await;
    assert_eq!(renamed["display_name"], "Alice's phone");

    cli.ok(&["devices", "delete", &phone]).await;
    let refused = cli.run(&["--profile", "phone", "whoami"]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("unknown_token") && stderr.contains("parley login"), "{stderr}");

    cli.ok(&["logout"]).await;
    assert!(!session_file.exists(), "logout forgets the session");
    let after = cli.run(&["whoami"]).await;
    assert!(String::from_utf8_lossy(&after.stderr).contains("not logged in"));
}

#[tokio::test]
async fn errors_are_one_clear_line() {
    let server = TestServer::spawn().await;
    let home = tempfile::tempdir().expect("tempdir");
    let cli = Cli { home: home.path(), server: &server };
    let ca = server.ca_file();
    let ca = ca.to_str().expect("utf-8");
    let pw = home.path().join("pw");
    std::fs::write(&pw, "short\n").expect("write");
    let pw = pw.to_str().expect("utf-8");

    let weak = cli.run(&["--server", &server.url, "--ca-file", ca, "register", "bob", "--password-file", pw]).await;
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("(weak_password)"));

    // No terminal and no password file: refuse rather than hang.
    let no_tty = cli.run(&["--server", &server.url, "--ca-file", ca, "register", "bob"]).await;
    assert!(String::from_utf8_lossy(&no_tty.stderr).contains("--password-file"));

    // Nothing listening.
    let down = cli.run(&["--server", "https://127.0.0.1:9", "--ca-file", ca, "login", "bob", "--password-file", pw]).await;
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(stderr.contains("cannot reach") && stderr.contains("hint:"), "{stderr}");
    let _ = cli.server;
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["register", "--help"],
        vec!["login", "--help"],
        vec!["logout", "--help"],
        vec!["whoami", "--help"],
        vec!["passwd", "--help"],
        vec!["devices", "--help"],
        vec!["devices", "list", "--help"],
        vec!["devices", "rename", "--help"],
        vec!["devices", "delete", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_parley")).args(&args).output().expect("run");
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
}
