//! Roles, names and topics, and leaving alone (issue 16), across three domains of real
//! homeserver processes, through the real `parley` CLI: the hub refuses a member's add
//! (`403 not_group_admin`), a promoted member may add, a commit a lying hub accepted is
//! refused by every client, a name and topic reach everyone while the servers hold only
//! ciphertext, and a member leaves while every other member's server is down.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use parley_specs::ServerName;
use parley_tests::process::{ProcessServer, parley_binary};
use parley_tests::server::{ca_file, federating_config, free_loopback_addr};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(60);

/// Three federating homeservers as processes: a.test, b.test and c.test, each peering with
/// the other two.
async fn three_domains(dir: &Path) -> Vec<ProcessServer> {
    let names = ["a.test", "b.test", "c.test"];
    let addrs: Vec<_> = names.iter().map(|_| free_loopback_addr()).collect();
    let mut servers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let peers = names
            .iter()
            .zip(&addrs)
            .filter(|(n, _)| *n != name)
            .map(|(n, a)| (ServerName::parse(n).unwrap(), *a))
            .collect();
        let config = federating_config(name, &sub, addrs[i], peers, |_| {}).await;
        servers.push(ProcessServer::start(config, &sub).await);
    }
    servers
}

/// A `parley` CLI home for one user on one server.
struct Cli {
    home: PathBuf,
    server: String,
    user: String,
}

impl Cli {
    async fn register(dir: &Path, server: &ProcessServer, name: &str) -> Self {
        let home = dir.join(format!("home-{name}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("password"), format!("{PASSWORD}\n")).unwrap();
        std::fs::write(home.join("passphrase"), "a passphrase for the store\n").unwrap();
        let cli = Self {
            home,
            server: server.url.clone(),
            user: format!("{name}@{}", server.config.server_name),
        };
        let password = cli.home.join("password");
        cli.ok(&["register", name, "--password-file", password.to_str().unwrap()])
            .await;
        cli
    }

    /// Runs `parley ARGS` (with `--json` first when asked); success and stdout + stderr.
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let mut command = tokio::process::Command::from(Command::new(parley_binary()));
        command
            .arg("--home")
            .arg(&self.home)
            .args(["--server", &self.server, "--ca-file"])
            .arg(ca_file())
            .arg("--passphrase-file")
            .arg(self.home.join("passphrase"))
            .args(args)
            .stdin(Stdio::null());
        let out = tokio::time::timeout(WAIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("parley {args:?} took over {WAIT:?}"))
            .expect("run parley");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "{} ran parley {args:?}: {text}", self.user);
        text
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parley {args:?} printed no JSON ({e}): {text}"))
    }

    /// This user's view of group `g` in `parley group list --json`.
    async fn group(&self, g: &str) -> Value {
        self.ok(&["sync"]).await;
        let groups = self.json(&["group", "list"]).await;
        groups
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["group_id"] == g)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Syncs until `check` holds for this user's view of group `g` (or panics after WAIT).
    async fn until(&self, g: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let view = self.group(g).await;
            if check(&view) {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {what} did not happen; the group is {view:#}",
                self.user
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn users(members: &Value) -> Vec<String> {
    let mut all: Vec<String> = members
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["user_id"].as_str().unwrap().to_owned())
        .collect();
    all.dedup();
    all
}

fn admins(view: &Value) -> Vec<String> {
    view["settings"]["admins"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn roles_are_enforced_by_the_hub_and_by_every_client_and_names_stay_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let servers = three_domains(dir.path()).await;
    let alice = Cli::register(dir.path(), &servers[0], "alice").await;
    let bob = Cli::register(dir.path(), &servers[1], "bob").await;
    let carol = Cli::register(dir.path(), &servers[2], "carol").await;

    let created = alice.json(&["group", "create"]).await;
    let g = created["group_id"].as_str().unwrap().to_owned();
    alice.ok(&["group", "add", &g, &bob.user]).await;
    bob.until(&g, "bob joins", |v| v["member"] == true).await;

    // Bob is not an admin: the hub refuses his add, and nothing changes.
    let (ok, said) = bob.run(&["group", "add", &g, &carol.user]).await;
    assert!(!ok, "a member's add must be refused: {said}");
    assert!(
        said.contains("not_group_admin") || said.contains("not an admin"),
        "{said}"
    );
    let view = alice.group(&g).await;
    assert_eq!(users(&view["members"]), [alice.user.clone(), bob.user.clone()]);
    assert_eq!(admins(&view), std::slice::from_ref(&alice.user));

    // Promoted, he may.
    alice.ok(&["group", "promote", &g, &bob.user]).await;
    bob.until(&g, "bob sees his promotion", |v| admins(v).contains(&bob.user))
        .await;
    bob.ok(&["group", "add", &g, &carol.user]).await;
    let view = carol.until(&g, "carol joins", |v| v["member"] == true).await;
    assert_eq!(admins(&view), [alice.user.clone(), bob.user.clone()]);

    // Name and topic: set by an admin, seen by all, never in the servers' clear.
    alice.ok(&["group", "rename", &g, "Project Lighthouse"]).await;
    alice.ok(&["group", "topic", &g, "Launch on Friday"]).await;
    for cli in [&alice, &bob, &carol] {
        let view = cli
            .until(&g, "the name arrives", |v| {
                v["settings"]["name"] == "Project Lighthouse"
            })
            .await;
        assert_eq!(view["settings"]["topic"], "Launch on Friday", "{view:#}");
        let history = cli.ok(&["history", &g]).await;
        assert!(
            history.starts_with("# Project Lighthouse — Launch on Friday"),
            "{history}"
        );
        let settings = cli.json(&["group", "admins", &g]).await;
        assert_eq!(settings["name"], "Project Lighthouse");
    }
    // A member may not rename, nor set the group's timer.
    for refused in [
        ["group", "rename", g.as_str(), "Carol's"],
        ["group", "timer", g.as_str(), "1h"],
    ] {
        let (ok, said) = carol.run(&refused).await;
        assert!(
            !ok && (said.contains("not_group_admin") || said.contains("not an admin")),
            "{refused:?}: {said}"
        );
    }
    // The group's disappearing timer, set by an admin, applies to every member's messages.
    alice.ok(&["group", "timer", &g, "2h"]).await;
    let view = carol
        .until(&g, "the timer arrives", |v| v["settings"]["timer_secs"] == 7200)
        .await;
    assert_eq!(view["settings"]["name"], "Project Lighthouse", "{view:#}");
    let sent = carol.json(&["send", &g, "This one disappears"]).await;
    assert!(sent["expires_at"].is_string(), "the group's timer applies: {sent:#}");
    alice.ok(&["group", "timer", &g, "off"]).await;
    carol
        .until(&g, "the timer is off", |v| v["settings"]["timer_secs"].is_null())
        .await;
    let sent = carol.json(&["send", &g, "This one stays"]).await;
    assert!(sent["expires_at"].is_null(), "no timer: {sent:#}");
    for server in &servers {
        for (table, column) in [
            ("groups", "public_state"),
            ("groups", "group_info"),
            ("group_messages", "payload"),
        ] {
            let sql = format!(
                "SELECT count(*) FROM {table} WHERE position(convert_to('Lighthouse', 'UTF8') in {column}) > 0"
            );
            assert_eq!(
                server.count(&sql, &[]).await,
                0,
                "{} holds the name in {table}.{column}",
                server.config.server_name
            );
        }
    }

    // A lying hub: a.test claims bob left (as a compromised hub would, in its store), so it
    // takes carol's commit removing him. Alice's and Bob's clients saw no signed leave of
    // Bob's: they refuse the commit and the conversation.
    let marked = servers[0]
        .count(
            "WITH u AS (UPDATE groups SET leaving_users = ARRAY[$2::text] WHERE group_id = $1 RETURNING 1) SELECT count(*) FROM u",
            &[&g, &bob.user],
        )
        .await;
    assert_eq!(marked, 1);
    carol.ok(&["group", "remove", &g, &bob.user]).await;
    for cli in [&alice, &bob] {
        let view = cli
            .until(&g, "the forbidden commit is refused", |v| !v["refused"].is_null())
            .await;
        let why = view["refused"].as_str().unwrap();
        assert!(why.contains("not an admin"), "{why}");
    }
}

#[tokio::test]
async fn a_member_leaves_while_every_other_members_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = three_domains(dir.path()).await;
    // The group is hubbed on c.test, where carol, its creator and only admin, leaves.
    let alice = Cli::register(dir.path(), &servers[0], "alice").await;
    let bob = Cli::register(dir.path(), &servers[1], "bob").await;
    let carol = Cli::register(dir.path(), &servers[2], "carol").await;
    let g = carol.json(&["group", "create"]).await["group_id"]
        .as_str()
        .unwrap()
        .to_owned();
    carol.ok(&["group", "add", &g, &alice.user, &bob.user]).await;
    alice.until(&g, "alice joins", |v| v["member"] == true).await;
    bob.until(&g, "bob joins", |v| v["member"] == true).await;
    carol.ok(&["group", "rename", &g, "Book club"]).await;
    alice
        .until(&g, "the name arrives", |v| v["settings"]["name"] == "Book club")
        .await;

    // Everyone else's server is down.
    servers[0].kill();
    servers[1].kill();
    let said = carol.ok(&["group", "leave", &g]).await;
    assert!(said.contains("Left"), "{said}");
    assert!(
        carol.group(&g).await.is_null(),
        "the conversation is gone from carol's device"
    );
    let carol_device = carol.json(&["whoami"]).await["device_id"].as_str().unwrap().to_owned();
    let leaving = servers[2]
        .count(
            "SELECT count(*) FROM groups WHERE group_id = $1 AND leaving_users = ARRAY[$2::text]",
            &[&g, &carol.user],
        )
        .await;
    assert_eq!(leaving, 1, "the hub holds carol's leave");

    // They come back, see the leave, and the next of them online removes her; the admin
    // role passes to the remaining member with the lowest leaf (alice, added first).
    servers[0].restart().await;
    servers[1].restart().await;
    for cli in [&alice, &bob] {
        let view = cli
            .until(&g, "carol's removal", |v| !users(&v["members"]).contains(&carol.user))
            .await;
        assert_eq!(
            users(&view["members"]),
            [alice.user.clone(), bob.user.clone()],
            "{view:#}"
        );
        assert_eq!(admins(&view), std::slice::from_ref(&alice.user), "{view:#}");
        assert_eq!(view["settings"]["name"], "Book club");
    }
    bob.ok(&["send", &g, "carol is gone"]).await;
    alice
        .until(&g, "bob's message", |v| v["messages"].as_u64().unwrap_or(0) >= 1)
        .await;
    // The hub wrote nothing of the group for carol's device since she left (delivery
    // receipts of her own earlier messages still reach her, as they reach any sender).
    let after = servers[2]
        .count(
            "SELECT count(*) FROM inbox WHERE group_id = $1 AND device_id = $2 AND kind <> 3",
            &[&g, &carol_device],
        )
        .await;
    assert_eq!(after, 0, "carol's device still receives the group");
    let leaving = servers[2]
        .count(
            "SELECT count(*) FROM groups WHERE group_id = $1 AND leaving_users = '{}'",
            &[&g],
        )
        .await;
    assert_eq!(leaving, 1, "the removal cleared the leave");
}
