//! The messaging commands of the `parley` binary (`group`, `send`, `reply`, `react`,
//! `edit`, `listen`, `sync`, `history`, `export`, `verify`, `delete`) against a real homeserver on a real
//! PostgreSQL, between two people each with their own CLI home.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use parley_tests::TestServer;
use tokio::sync::mpsc;

const PASSWORD: &str = "a long enough password";
const PASSPHRASE: &str = "store passphrase of the test";

/// One person's `parley` home, registered on the server.
struct Person {
    home: tempfile::TempDir,
    user_id: String,
    /// Extra environment for every run (e.g. PARLEY_PASSPHRASE_FILE).
    env: Vec<(String, String)>,
    /// Extra arguments for every run (e.g. --passphrase-file).
    args: Vec<String>,
}

impl Person {
    async fn register(server: &TestServer, name: &str, passphrase_by_env: bool) -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let write = |file: &str, text: &str| {
            let path = home.path().join(file);
            std::fs::write(&path, format!("{text}\n")).expect("write");
            path.to_str().expect("utf-8").to_owned()
        };
        let password = write("password", PASSWORD);
        let passphrase = write("passphrase", PASSPHRASE);
        let (env, args) = if passphrase_by_env {
            (vec![("PARLEY_PASSPHRASE_FILE".to_owned(), passphrase)], vec![])
        } else {
            (vec![], vec!["--passphrase-file".to_owned(), passphrase])
        };
        let person = Self {
            home,
            user_id: format!("{name}@{}", server.server_name()),
            env,
            args,
        };
        let ca = server.ca_file();
        let registered = person
            .ok(&[
                "--server",
                &server.url,
                "--ca-file",
                ca.to_str().expect("utf-8"),
                "register",
                name,
                "--password-file",
                &password,
            ])
            .await;
        assert!(registered.contains("published its KeyPackages"), "{registered}");
        person
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("--home")
            .arg(self.home.path())
            .args(&self.args)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("run parley"))
            .await
            .expect("join")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "parley {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(out.status.code(), Some(1), "parley {args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        stderr
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let all: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
        serde_json::from_str(&self.ok(&all).await).expect("JSON output")
    }

    fn store(&self) -> PathBuf {
        self.home.path().join("profiles/default/messenger.sealed")
    }
}

/// `parley listen` running in the background, its stdout lines on a channel.
struct Listener {
    /// Taken by `interrupt`; killed on drop otherwise (a failed test leaves nothing behind).
    child: Option<Child>,
    lines: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
}

impl Listener {
    fn start(person: &Person) -> Self {
        let mut child = person.command(&["--json", "listen"]).spawn().expect("start listen");
        let stdout = child.stdout.take().expect("stdout");
        // The homeserver runs on this test's runtime: the reader must never block it.
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            lines: tokio::sync::Mutex::new(lines),
        }
    }

    /// The next event printed whose JSON satisfies `wanted`, waiting up to 30 s.
    async fn until(&self, wanted: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut lines = self.lines.lock().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let line = tokio::time::timeout_at(deadline, lines.recv())
                .await
                .expect("an event in time")
                .expect("listen is running");
            let event: serde_json::Value = serde_json::from_str(&line).expect("one JSON event per line");
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Ctrl-C: the listener stops cleanly.
    async fn interrupt(mut self) {
        let child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let mut kill = Command::new("kill");
        kill.args(["-INT", &pid]);
        let status = tokio::task::spawn_blocking(move || kill.status().expect("kill"))
            .await
            .expect("join");
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
            .await
            .expect("join");
        assert!(
            exit.status.success(),
            "listen exits cleanly on Ctrl-C: {}",
            String::from_utf8_lossy(&exit.stderr)
        );
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn two_people_talk_verify_and_part() {
    let server = TestServer::spawn().await;
    let ann = Person::register(&server, "ann", false).await;
    let ben = Person::register(&server, "ben", true).await;

    // Ben's first messaging command creates his store and publishes his keys.
    assert_eq!(ben.ok(&["sync"]).await.trim_end(), "Nothing new.");
    assert_eq!(mode(&ben.store()), 0o600);

    let created = ann.json(&["group", "create"]).await;
    let group = created["group_id"].as_str().expect("group id").to_owned();
    assert!(group.ends_with(&format!("@{}", server.server_name())), "{group}");
    let added = ann.ok(&["group", "add", &group, "ben"]).await;
    assert_eq!(
        added.trim_end(),
        format!("Added {} (1 device) to {group}.", ben.user_id)
    );

    // Ben listens; Ann writes.
    let listener = Listener::start(&ben);
    let joined = listener.until(|e| e["event"] == "joined").await;
    assert_eq!(joined["group_id"], group.as_str());
    assert_eq!(joined["added_by"], ann.user_id.as_str());
    let prefix = &group[..8];
    let sent = ann.ok(&["send", prefix, "hello ben"]).await;
    assert!(sent.starts_with("Sent #") && sent.contains(&group), "{sent}");
    let vanishing = ann.json(&["send", &group, "this will vanish", "--expires", "3s"]).await;
    assert!(vanishing["expires_at"].is_string());
    let message = listener.until(|e| e["event"] == "message").await;
    assert_eq!(message["message"]["text"], "hello ben");
    assert_eq!(message["message"]["sender"], ann.user_id.as_str());
    let second = listener.until(|e| e["event"] == "message").await;
    assert_eq!(second["message"]["text"], "this will vanish");
    listener.interrupt().await;

    // Ben's history, search and export.
    let history = ben.ok(&["history", &group]).await;
    assert!(history.contains(&format!("{}: hello ben", ann.user_id)), "{history}");
    let found = ben.json(&["history", &group, "--search", "HELLO"]).await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let seq = found[0]["seq"].as_i64().expect("seq");
    let exported = ben.json(&["export", &group]).await;
    assert_eq!(exported["group_id"], group.as_str());
    assert_eq!(exported["messages"][0]["text"], "hello ben");
    let text = ben.ok(&["export", &group, "--format", "text"]).await;
    assert!(
        text.starts_with(&format!("Conversation {group}, exported by {}", ben.user_id)),
        "{text}"
    );
    // The store on disk shows none of it.
    let raw = std::fs::read(ben.store()).expect("store");
    assert!(!raw.windows(9).any(|w| w == b"hello ben"));

    // Members, and the list of conversations.
    let members = ann.json(&["group", "members", &group]).await;
    assert_eq!(members.as_array().map(Vec::len), Some(2));
    let list = ben.ok(&["group", "list"]).await;
    assert!(list.starts_with("GROUP") && list.contains(&group), "{list}");

    // Safety numbers: the same on both sides; Ann marks Ben verified.
    let ann_view = ann.json(&["verify", "ben"]).await;
    let ben_view = ben.json(&["verify", &ann.user_id]).await;
    assert_eq!(ann_view["digits"], ben_view["digits"]);
    assert_eq!(ann_view["verification"]["state"], "unverified");
    let shown = ann.ok(&["verify", "ben"]).await;
    let digits = ann_view["digits"].as_str().expect("digits");
    assert!(
        shown.contains(&format!("    {} {}", &digits[..5], &digits[5..10])),
        "{shown}"
    );
    assert!(shown.contains("--mark"), "{shown}");
    let marked = ann.ok(&["verify", "ben", "--mark"]).await;
    assert!(
        marked.starts_with(&format!("Marked {} verified (1 device).", ben.user_id)),
        "{marked}"
    );
    assert_eq!(ann.json(&["verify", "ben"]).await["verification"]["state"], "verified");

    // A wrong passphrase is refused clearly.
    let wrong = ann.home.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").expect("write");
    let err = ann
        .fails(&["history", &group, "--passphrase-file", wrong.to_str().expect("utf-8")])
        .await;
    assert!(err.contains("wrong passphrase") && err.contains("hint: "), "{err}");

    // Deleting a message, and expiry, remove it from Ben's history.
    ben.ok(&["delete", &group, &seq.to_string()]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ben.json(&["history", &group]).await;
    assert_eq!(after.as_array().map(Vec::len), Some(0), "{after}");

    // Ann removes Ben; Ben learns it; Ann leaves and the conversation is gone.
    let removed = ann.ok(&["group", "remove", &group, "ben"]).await;
    assert_eq!(
        removed.trim_end(),
        format!("Removed {} (1 device) from {group}.", ben.user_id)
    );
    let news = ben.ok(&["sync"]).await;
    assert!(news.contains(&format!("{} removed this device", ann.user_id)), "{news}");
    let refused = ben.fails(&["send", &group, "anyone?"]).await;
    assert!(refused.contains("no longer a member"), "{refused}");
    let left = ann.ok(&["group", "leave", &group]).await;
    assert!(left.starts_with(&format!("Left {group}")), "{left}");
    let gone = ann.fails(&["history", &group]).await;
    assert!(gone.contains("no conversation"), "{gone}");
}

#[tokio::test]
async fn replies_reactions_edits_and_deletes_for_everyone() {
    let server = TestServer::spawn().await;
    let ann = Person::register(&server, "ann", false).await;
    let ben = Person::register(&server, "ben", false).await;
    ben.ok(&["sync"]).await;
    let group = ann.json(&["group", "create"]).await["group_id"]
        .as_str()
        .expect("group id")
        .to_owned();
    ann.ok(&["group", "add", &group, "ben"]).await;
    let question = ann.json(&["send", &group, "Lunch at noon?"]).await["seq"]
        .as_i64()
        .expect("seq");
    let q = question.to_string();
    ben.ok(&["sync"]).await;

    // Ben replies and reacts; the same emoji again takes it back.
    let replied = ben.ok(&["reply", &group, &q, "Yes, see you"]).await;
    assert!(
        replied.starts_with("Sent #") && replied.contains(&format!("replying to #{question}")),
        "{replied}"
    );
    let reacted = ben.ok(&["react", &group, &q, "👍"]).await;
    assert_eq!(reacted.trim_end(), format!("Reacted 👍 to #{question} in {group}."));
    let back = ben.ok(&["react", &group, &q, "👍"]).await;
    assert_eq!(
        back.trim_end(),
        format!("Took your 👍 back from #{question} in {group}.")
    );
    ben.ok(&["react", &group, &q, "👍"]).await;
    ben.ok(&["react", &group, &q, "🎉"]).await;
    ben.ok(&["react", &group, &q, "🎉", "--remove"]).await;

    // Ann sees the reply quoted and the reaction counted.
    let news = ann.ok(&["sync"]).await;
    assert!(news.contains(&format!("(reply to #{question})")), "{news}");
    let history = ann.ok(&["history", &group]).await;
    assert!(
        history.contains(&format!("#{question}  {}: Lunch at noon?  [👍 1]", ann.user_id)),
        "{history}"
    );
    assert!(
        history.contains(&format!("  > #{question} {}: Lunch at noon?\n", ann.user_id)),
        "{history}"
    );

    // Ann edits her question; Ben's history --json shows all of it.
    let edited = ann.ok(&["edit", &group, &q, "Lunch at one?"]).await;
    assert!(
        edited.starts_with(&format!("Edited #{question} in {group} for everyone")),
        "{edited}"
    );
    ben.ok(&["sync"]).await;
    let messages = ben.json(&["history", &group]).await;
    let original = &messages[0];
    assert_eq!(original["seq"], question);
    assert_eq!(original["text"], "Lunch at one?");
    assert!(original["edited_at"].is_string(), "{original}");
    assert_eq!(original["reactions"], serde_json::json!({ "👍": [ben.user_id] }));
    assert_eq!(messages[1]["reply_to"], question);
    assert!(
        ben.ok(&["history", &group])
            .await
            .contains("Lunch at one?  (edited)  [👍 1]")
    );

    // What Ben may not do, each a clear error with nothing sent.
    let err = ben.fails(&["edit", &group, &q, "Lunch never"]).await;
    assert!(err.contains("only its sender may edit it"), "{err}");
    let err = ben.fails(&["delete", &group, &q, "--for-everyone"]).await;
    assert!(err.contains("only its sender may delete it for everyone"), "{err}");
    let err = ben.fails(&["react", &group, "9999", "👍"]).await;
    assert!(err.contains("no message #9999 in the history of"), "{err}");
    let err = ben.fails(&["react", &group, &q, "two words"]).await;
    assert!(err.contains("invalid reaction"), "{err}");
    let err = ben.fails(&["reply", &group, "9999", "to nothing"]).await;
    assert!(err.contains("no message #9999"), "{err}");
    assert_eq!(ann.ok(&["sync"]).await.trim_end(), "Nothing new.", "nothing was sent");

    // Ann deletes it for everyone: gone from Ben's history, his reply stays.
    let deleted = ann.ok(&["delete", &group, &q, "--for-everyone"]).await;
    assert!(deleted.contains("for everyone"), "{deleted}");
    let news = ben.ok(&["sync"]).await;
    assert!(news.contains(&format!("deleted #{question} for everyone")), "{news}");
    let messages = ben.json(&["history", &group]).await;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    assert_eq!(messages[0]["reply_to"], question);
    let history = ben.ok(&["history", &group]).await;
    assert!(
        history.contains(&format!("  > #{question} (no longer on this device)")),
        "{history}"
    );
    assert!(!history.contains("Lunch"), "{history}");
}

#[tokio::test]
async fn the_passphrase_is_never_an_argument_and_is_asked_for_at_sign_in() {
    let server = TestServer::spawn().await;
    let home = tempfile::tempdir().expect("tempdir");
    let write = |file: &str, text: &str| {
        let path = home.path().join(file);
        std::fs::write(&path, format!("{text}\n")).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let password = write("password", PASSWORD);
    let short = write("short", "abc");
    let ca = server.ca_file();
    let run = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--home")
            .arg(home.path())
            .args(["--server", &server.url, "--ca-file", ca.to_str().expect("utf-8")])
            .args(extra)
            .args(["register", "cid", "--password-file", &password])
            .stdin(Stdio::null());
        async move {
            tokio::task::spawn_blocking(move || command.output().expect("run"))
                .await
                .expect("join")
        }
    };
    let store = home.path().join("profiles/default/messenger.sealed");
    let session = home.path().join("profiles/default/session.json");
    // Without --passphrase-file and without a terminal: a clear error before anything is
    // sent, no store and no session.
    let out = run(&[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--passphrase-file"), "{stderr}");
    assert!(!store.exists() && !session.exists());
    // A short passphrase is refused for the new store, before the account is made.
    let out = run(&["--passphrase-file", &short]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("passphrase is too short"), "{stderr}");
    assert!(!store.exists() && !session.exists());
    // There is no --passphrase option.
    let usage = run(&["--passphrase", PASSPHRASE]).await;
    assert_eq!(usage.status.code(), Some(2));
    // With one, the account is made (the name was not taken by the refusals above).
    let passphrase = write("passphrase", PASSPHRASE);
    let out = run(&["--passphrase-file", &passphrase]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&store), 0o600);
}

#[tokio::test]
async fn a_user_who_just_registered_can_be_added_at_once() {
    let server = TestServer::spawn().await;
    let alice = Person::register(&server, "alice", false).await;
    let group = alice.json(&["group", "create"]).await["group_id"]
        .as_str()
        .expect("group id")
        .to_owned();
    // Bob registers, and does nothing else: his device published its KeyPackages.
    let bob = Person::register(&server, "bob", true).await;
    let added = alice.ok(&["group", "add", &group, "bob"]).await;
    assert_eq!(
        added.trim_end(),
        format!("Added {} (1 device) to {group}.", bob.user_id)
    );
    alice.ok(&["send", &group, "welcome, bob"]).await;
    let news = bob.json(&["sync"]).await;
    let events = news.as_array().expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "joined" && e["group_id"] == group.as_str()),
        "{news}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "message" && e["message"]["text"] == "welcome, bob"),
        "{news}"
    );
}

#[tokio::test]
async fn deleting_a_device_removes_it_from_the_conversations() {
    let server = TestServer::spawn().await;
    let alice = Person::register(&server, "alice", false).await;
    let password = alice.home.path().join("password");
    let ca = server.ca_file();
    let phone = alice
        .json(&[
            "--server",
            &server.url,
            "--ca-file",
            ca.to_str().expect("utf-8"),
            "--profile",
            "phone",
            "login",
            "alice",
            "--password-file",
            password.to_str().expect("utf-8"),
        ])
        .await["device_id"]
        .as_str()
        .expect("device id")
        .to_owned();
    let group = alice.json(&["group", "create"]).await["group_id"]
        .as_str()
        .expect("group id")
        .to_owned();
    // Her own user: her other device.
    alice.ok(&["group", "add", &group, "alice"]).await;
    assert_eq!(
        alice.json(&["group", "members", &group]).await.as_array().map(Vec::len),
        Some(2)
    );

    let deleted = alice.ok(&["devices", "delete", &phone]).await;
    assert_eq!(
        deleted.trim_end(),
        format!("Deleted device {phone}; its access is revoked, and it was removed from 1 conversation(s).")
    );
    let members = alice.json(&["group", "members", &group]).await;
    assert_eq!(members.as_array().map(Vec::len), Some(1), "{members}");
    // The hub took the removal: the group takes messages again.
    alice.ok(&["send", &group, "only me now"]).await;
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}
