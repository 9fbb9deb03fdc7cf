//! The `parley` binary as a person or script uses it, against a real homeserver on a
//! real PostgreSQL (the workspace's test harness, `parley-tests`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use parley_tests::TestServer;

const PASSWORD: &str = "a long enough password";

struct Cli {
    home: tempfile::TempDir,
    url: String,
}

impl Cli {
    fn new(server: &TestServer) -> Self {
        Self {
            home: tempfile::tempdir().expect("tempdir"),
            url: server.url.clone(),
        }
    }

    fn password_file(&self, name: &str, password: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, format!("{password}\n")).expect("write");
        path.to_str().expect("utf-8").to_owned()
    }

    fn session_file(&self, profile: &str) -> PathBuf {
        self.home.path().join("profiles").join(profile).join("session.json")
    }

    /// Runs `parley` with a clean environment (no PARLEY_* from the caller), no terminal.
    async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        // Register and login create the device's message store, sealed with this.
        let passphrase = self.password_file("passphrase", "the message store passphrase");
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PARLEY_PASSPHRASE_FILE", passphrase)
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("run parley");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(stdin.as_bytes())
                .expect("write stdin");
            child.wait_with_output().expect("wait")
        })
        .await
        .expect("join")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "").await
    }

    /// Runs a command that must succeed; returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "parley {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(out.status.code(), Some(1), "parley {args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout when failing");
        stderr
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let all: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
        serde_json::from_str(&self.ok(&all).await).expect("JSON output")
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test]
async fn register_login_devices_logout() {
    let server = TestServer::spawn().await;
    let cli = Cli::new(&server);
    let pw = cli.password_file("pw", PASSWORD);
    let ca = server.ca_file();
    let ca = ca.to_str().unwrap();
    let url = cli.url.clone();

    let out = cli
        .ok(&[
            "--server",
            &url,
            "--ca-file",
            ca,
            "register",
            "alice",
            "--password-file",
            &pw,
            "--device-name",
            "laptop",
        ])
        .await;
    assert!(
        out.starts_with("Registered alice@test.parley — this device is "),
        "{out}"
    );
    let (first_line, messaging) = out.split_once('\n').expect("two lines");
    assert!(first_line.ends_with("(\"laptop\")"), "{out}");
    assert!(messaging.contains("published its KeyPackages"), "{out}");

    // The session file is private, holds the token and the absolute CA path; the token
    // is never printed.
    let session_file = cli.session_file("default");
    assert_eq!(mode(&session_file), 0o600);
    assert_eq!(mode(session_file.parent().unwrap()), 0o700);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&session_file).unwrap()).unwrap();
    let token = saved["access_token"].as_str().expect("token");
    assert!(!out.contains(token));
    assert_eq!(saved["ca_file"], ca);
    assert_eq!(saved["user_id"], "alice@test.parley");

    // Later commands need no --server: it is remembered.
    let me = cli.json(&["whoami"]).await;
    assert_eq!(me["user_id"], "alice@test.parley");
    let laptop = me["device_id"].as_str().expect("device").to_owned();
    let text = cli.ok(&["whoami"]).await;
    assert_eq!(text.trim_end(), format!("alice@test.parley (device {laptop}) on {url}"));

    // A live session is not overwritten by accident.
    let again = cli.fails(&["login", "alice", "--password-file", &pw]).await;
    assert!(again.contains("already logged in as alice@test.parley"), "{again}");

    // A second profile is a second device; --json never shows the token either.
    let phone_login = cli
        .json(&[
            "--profile",
            "phone",
            "--server",
            &url,
            "--ca-file",
            ca,
            "login",
            "alice",
            "--password-file",
            &pw,
        ])
        .await;
    assert_eq!(phone_login["user_id"], "alice@test.parley");
    assert!(phone_login.get("access_token").is_none(), "{phone_login}");
    let phone = phone_login["device_id"].as_str().unwrap().to_owned();

    let devices = cli.json(&["devices", "list"]).await;
    assert_eq!(devices["devices"].as_array().expect("array").len(), 2);
    let table = cli.ok(&["devices", "list"]).await;
    assert!(table.contains(&format!("* {laptop}")), "{table}");
    assert!(table.contains(&format!("  {phone}")), "{table}");
    assert!(table.contains("LAST SEEN"), "{table}");

    let renamed = cli.json(&["devices", "rename", &phone, "Alice's phone"]).await;
    assert_eq!(renamed["display_name"], "Alice's phone");
    let text = cli.ok(&["devices", "rename", &phone, "Phone"]).await;
    assert_eq!(text.trim_end(), format!("Renamed device {phone} to \"Phone\"."));

    // Deleted, and removed from every conversation of this device (it has none yet).
    let deleted = cli.json(&["devices", "delete", &phone]).await;
    assert_eq!(deleted["ok"], true, "{deleted}");
    assert_eq!(deleted["device_id"], phone.as_str(), "{deleted}");
    assert_eq!(deleted["removed_from"], serde_json::json!([]), "{deleted}");
    let revoked = cli.fails(&["--profile", "phone", "whoami"]).await;
    assert!(
        revoked.starts_with("error: ") && revoked.contains("(unknown_token)\nhint: "),
        "{revoked}"
    );
    assert!(revoked.contains("`parley --profile phone login"), "{revoked}");
    // The revoked profile may log in again without logging out first.
    cli.ok(&["--profile", "phone", "login", "alice", "--password-file", &pw])
        .await;

    let missing = cli.fails(&["devices", "delete", "NOSUCHDEVICE"]).await;
    assert!(missing.contains("(not_found)"), "{missing}");
    let bad_id = cli.fails(&["devices", "delete", "../x"]).await;
    assert!(bad_id.starts_with("error: invalid device id"), "{bad_id}");

    let out = cli.ok(&["logout"]).await;
    assert!(out.starts_with("Logged out alice@test.parley"), "{out}");
    assert!(!session_file.exists(), "logout forgets the session");
    let after = cli.fails(&["whoami"]).await;
    assert!(after.contains("not logged in"), "{after}");
}

#[tokio::test]
async fn deleting_this_device_logs_out_and_logout_all() {
    let server = TestServer::spawn().await;
    let cli = Cli::new(&server);
    let pw = cli.password_file("pw", PASSWORD);
    let ca = server.ca_file();
    let ca = ca.to_str().unwrap();
    let url = cli.url.clone();
    cli.ok(&[
        "--server",
        &url,
        "--ca-file",
        ca,
        "register",
        "carol",
        "--password-file",
        &pw,
    ])
    .await;
    let me = cli.json(&["whoami"]).await;
    let this = me["device_id"].as_str().unwrap();
    let out = cli.ok(&["devices", "delete", this]).await;
    assert!(out.contains("this one"), "{out}");
    assert!(!cli.session_file("default").exists());

    // Default device name, login from stdin ("-"), then --all.
    let out = cli
        .run_with_stdin(
            &[
                "--server",
                &url,
                "--ca-file",
                ca,
                "login",
                "carol",
                "--password-file",
                "-",
            ],
            &format!("{PASSWORD}\n"),
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(\"parley CLI"),
        "default device name"
    );
    cli.ok(&[
        "--profile",
        "second",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "carol",
        "--password-file",
        &pw,
    ])
    .await;
    assert_eq!(cli.json(&["logout", "--all"]).await, serde_json::json!({"ok": true}));
    assert!(
        cli.fails(&["--profile", "second", "whoami"])
            .await
            .contains("unknown_token")
    );
    // Logging out a revoked session just forgets it.
    let out = cli.ok(&["--profile", "second", "logout"]).await;
    assert!(out.contains("already logged out"), "{out}");
    assert!(!cli.session_file("second").exists());
}

#[tokio::test]
async fn passwd_logs_out_other_devices() {
    let server = TestServer::spawn().await;
    let cli = Cli::new(&server);
    let pw = cli.password_file("pw", PASSWORD);
    let new_pw = cli.password_file("new", "a brand new password");
    let ca = server.ca_file();
    let ca = ca.to_str().unwrap();
    let url = cli.url.clone();
    cli.ok(&[
        "--server",
        &url,
        "--ca-file",
        ca,
        "register",
        "dave",
        "--password-file",
        &pw,
    ])
    .await;
    cli.ok(&[
        "--profile",
        "other",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "dave",
        "--password-file",
        &pw,
    ])
    .await;

    let wrong = cli
        .fails(&["passwd", "--password-file", &new_pw, "--new-password-file", &pw])
        .await;
    assert!(wrong.contains("(invalid_credentials)"), "{wrong}");
    let both_stdin = cli
        .fails(&["passwd", "--password-file", "-", "--new-password-file", "-"])
        .await;
    assert!(both_stdin.contains("cannot both read stdin"), "{both_stdin}");
    let no_tty = cli.fails(&["passwd", "--password-file", &pw]).await;
    assert!(no_tty.contains("--new-password-file"), "{no_tty}");

    let out = cli
        .ok(&["passwd", "--password-file", &pw, "--new-password-file", &new_pw])
        .await;
    assert!(out.contains("Password changed"), "{out}");
    cli.ok(&["whoami"]).await;
    assert!(
        cli.fails(&["--profile", "other", "whoami"])
            .await
            .contains("unknown_token")
    );
    cli.ok(&[
        "--profile",
        "third",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "dave",
        "--password-file",
        &new_pw,
    ])
    .await;
}

#[tokio::test]
async fn errors_are_one_clear_line_with_a_hint() {
    let server = TestServer::spawn().await;
    let cli = Cli::new(&server);
    let ca = server.ca_file();
    let ca = ca.to_str().unwrap();
    let url = cli.url.clone();
    let short = cli.password_file("short", "short");

    let weak = cli
        .fails(&[
            "--server",
            &url,
            "--ca-file",
            ca,
            "register",
            "bob",
            "--password-file",
            &short,
        ])
        .await;
    let first_line = weak.lines().next().unwrap();
    assert!(
        first_line.starts_with("error: ") && first_line.ends_with("(weak_password)"),
        "{weak}"
    );
    assert!(!cli.session_file("default").exists());

    // No terminal and no password file: refuse rather than hang.
    let no_tty = cli.fails(&["--server", &url, "--ca-file", ca, "register", "bob"]).await;
    assert!(no_tty.contains("--password-file"), "{no_tty}");

    let no_server = cli.fails(&["login", "bob", "--password-file", &short]).await;
    assert!(no_server.contains("--server"), "{no_server}");

    // Nothing listening.
    let down = cli
        .fails(&[
            "--server",
            "https://127.0.0.1:9",
            "--ca-file",
            ca,
            "login",
            "bob",
            "--password-file",
            &short,
        ])
        .await;
    assert!(
        down.starts_with("error: cannot reach https://127.0.0.1:9: connection refused\nhint: "),
        "{down}"
    );

    // The wrong CA.
    // The SDK's test certificates: a CA that issued nothing the server presents.
    let other_ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/testdata/other-ca.pem");
    let untrusted = cli
        .fails(&[
            "--server",
            &url,
            "--ca-file",
            other_ca.to_str().unwrap(),
            "login",
            "bob",
            "--password-file",
            &short,
        ])
        .await;
    assert!(
        untrusted.contains("TLS") && untrusted.contains("hint:") && untrusted.contains("--ca-file"),
        "{untrusted}"
    );
    let no_ca = cli
        .fails(&[
            "--server",
            &url,
            "--ca-file",
            "/nonexistent.pem",
            "login",
            "bob",
            "--password-file",
            &short,
        ])
        .await;
    assert!(
        no_ca.starts_with("error: cannot use CA file /nonexistent.pem"),
        "{no_ca}"
    );

    let http = cli
        .fails(&[
            "--server",
            "http://127.0.0.1:9",
            "login",
            "bob",
            "--password-file",
            &short,
        ])
        .await;
    assert!(http.contains("https://"), "{http}");

    let profile = cli.fails(&["--profile", "../etc", "whoami"]).await;
    assert!(profile.contains("invalid profile name"), "{profile}");

    // Usage errors are clap's: exit code 2.
    let usage = cli.run(&["login"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let usage = cli.run(&["login", "bob", "--password", "secret"]).await;
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn rate_limits_say_when_to_retry() {
    let server = TestServer::spawn_with(|c| c.limits.login_failures_per_account_and_address_per_minute = 1).await;
    let cli = Cli::new(&server);
    let pw = cli.password_file("pw", PASSWORD);
    let wrong = cli.password_file("wrong", "not the password");
    let ca = server.ca_file();
    let ca = ca.to_str().unwrap();
    let url = cli.url.clone();
    cli.ok(&[
        "--server",
        &url,
        "--ca-file",
        ca,
        "register",
        "erin",
        "--password-file",
        &pw,
    ])
    .await;
    let login = [
        "--profile",
        "p2",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "erin",
        "--password-file",
    ];
    let first = cli.fails(&[&login[..], &[wrong.as_str()]].concat()).await;
    assert!(first.contains("(invalid_credentials)"), "{first}");
    let limited = cli.fails(&[&login[..], &[wrong.as_str()]].concat()).await;
    let (error, hint) = limited.split_once('\n').expect("two lines");
    assert!(
        error.starts_with("error: ") && error.ends_with("(rate_limited)"),
        "{limited}"
    );
    let secs: u64 = hint
        .trim_start_matches("hint: retry in ")
        .trim_end()
        .trim_end_matches(" s")
        .parse()
        .unwrap_or_else(|_| panic!("{limited}"));
    assert!((1..=60).contains(&secs), "{limited}");
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
        let out = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(&args)
            .output()
            .expect("run");
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn every_argument_and_subcommand_has_help_text() {
    use clap::CommandFactory as _;
    let missing = parley_tests::clap_help::undocumented(&parley_cli::Cli::command());
    assert!(missing.is_empty(), "without a --help description: {missing:#?}");
}

/// `parley 2fa enable` shows the secret, takes the code on stdin and prints recovery
/// codes; `parley login` then needs a code (`--totp-code`, or asked for on stdin, or a
/// recovery code); `parley 2fa status` and `disable` follow.
// Multi-threaded: the test reads the CLI's output synchronously while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_enable_then_login_with_a_code() {
    use parley_tests::totp::{code_now, with_time_left_in_step};
    use std::io::{BufRead, BufReader};

    let keys = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(|config| {
        config.second_factor.key_file = Some(keys.path().join("second-factor.key"));
    })
    .await;
    let cli = Cli::new(&server);
    let pw = cli.password_file("pw", PASSWORD);
    let ca = server.ca_file();
    let url = cli.url.clone();
    let ca = ca.to_str().unwrap();
    cli.ok(&[
        "--server",
        &url,
        "--ca-file",
        ca,
        "register",
        "zoe",
        "--password-file",
        &pw,
    ])
    .await;
    with_time_left_in_step(20).await;

    // Text mode: a QR code and the secret, then the prompt; the code comes on stdin.
    let passphrase = cli.password_file("passphrase", "the message store passphrase");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PARLEY_PASSPHRASE_FILE", passphrase)
        .arg("--home")
        .arg(cli.home.path())
        .args(["2fa", "enable"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parley 2fa enable");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut shown = String::new();
    let secret = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read") == 0 {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read");
            panic!("no secret in {shown}; stderr: {err}");
        }
        shown.push_str(&line);
        if let Some(secret) = line.trim().strip_prefix("or enter this secret by hand: ") {
            break secret.to_owned();
        }
    };
    assert!(
        shown.contains('█') && shown.contains('▀'),
        "a QR code in the terminal: {shown}"
    );
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", code_now(&secret, -1)).expect("write the code");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{rest}");
    let recovery: Vec<&str> = rest
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 19 && l.matches('-').count() == 3)
        .collect();
    assert_eq!(recovery.len(), 10, "{rest}");
    let status = cli.json(&["2fa", "status"]).await;
    assert_eq!(
        (status["enabled"].as_bool(), status["recovery_codes_left"].as_i64()),
        (Some(true), Some(10))
    );

    // Logins now need a code: from the flag...
    let refused = cli
        .fails(&[
            "--profile",
            "p1",
            "--server",
            &url,
            "--ca-file",
            ca,
            "login",
            "zoe",
            "--password-file",
            &pw,
            "--totp-code",
            "000000",
        ])
        .await;
    assert!(
        refused.contains("invalid_second_factor") || refused.contains("second-factor"),
        "{refused}"
    );
    let login = cli
        .json(&[
            "--profile",
            "p1",
            "--server",
            &url,
            "--ca-file",
            ca,
            "login",
            "zoe",
            "--password-file",
            &pw,
            "--totp-code",
            &code_now(&secret, 0),
        ])
        .await;
    assert_eq!(login["user_id"], "zoe@test.parley");
    // ...asked for on stdin when the server says it is needed...
    let out = cli
        .run_with_stdin(
            &[
                "--profile",
                "p2",
                "--server",
                &url,
                "--ca-file",
                ca,
                "login",
                "zoe",
                "--password-file",
                &pw,
            ],
            &format!("{}\n", code_now(&secret, 1)),
        )
        .await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("This account has a second factor"));
    // ...or a recovery code, once.
    cli.ok(&[
        "--profile",
        "p3",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "zoe",
        "--password-file",
        &pw,
        "--totp-code",
        recovery[0],
    ])
    .await;
    cli.fails(&[
        "--profile",
        "p4",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "zoe",
        "--password-file",
        &pw,
        "--totp-code",
        recovery[0],
    ])
    .await;

    cli.ok(&["2fa", "disable", "--password-file", &pw, "--code", recovery[1]])
        .await;
    let status = cli.ok(&["2fa", "status"]).await;
    assert!(status.starts_with("Second factor off."), "{status}");
    cli.ok(&[
        "--profile",
        "p5",
        "--server",
        &url,
        "--ca-file",
        ca,
        "login",
        "zoe",
        "--password-file",
        &pw,
    ])
    .await;
}
