//! The web app end to end in a real browser: two federating homeservers (a.test and
//! b.test, in this process), one `parley ui` process per user (the `parley` binary built
//! beside this test), and `client-sdk/cli/web/e2e/two-users.mjs` driving headless Chromium
//! through `playwright-core`: both register, ann creates a conversation with bob, messages
//! go both ways, both compare and verify the safety number, a disappearing message
//! vanishes, and a second device of bob (logged in here with the CLI when the script asks)
//! makes ann's app warn and pause sending until she acknowledges it; ann names the group
//! in its settings panel and bob sees the name (and that only admins may change it).
//!
//! Screenshots and logs go to `target/e2e-artifacts/`. Without node, Chromium, the npm
//! packages of `client-sdk/cli/web`, the `parley` binary or the built web app the test says
//! why it is skipped and passes, except under `CI=true` (where `.ci/run` installs them),
//! where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use parley_specs::ServerName;
use parley_tests::TestServer;
use parley_tests::server::{ca_pem, free_loopback_addr, https_client};
use parley_tests::tools::{in_ci, repo_root};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const SCRIPT: &str = "client-sdk/cli/web/e2e/two-users.mjs";
const ANN: &str = "ann@a.test";
const BOB: &str = "bob@b.test";
const BOB_PASSWORD: &str = "bob-correct-horse-battery";
const PASSPHRASE: &str = "a store passphrase for the e2e test";
/// The script has its own deadline (`E2E_TIMEOUT_MS`); this one is for a hung node.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(420);
const INSTALL_HINT: &str = "install with `apt-get install chromium fonts-dejavu-core fonts-noto-color-emoji nodejs npm`, \
     `npm --prefix client-sdk/cli/web ci && npm --prefix client-sdk/cli/web run build` (before building \
     `parley`, which embeds the web app), then `cargo build --bin parley`";

/// `None` after printing why the test is skipped; under CI a missing piece fails.
fn skip(reason: &str) -> Option<Prerequisites> {
    assert!(
        !in_ci(),
        "ui_e2e: {reason} although CI=true (.ci/run installs it); {INSTALL_HINT}"
    );
    eprintln!("ui_e2e skipped: {reason}; {INSTALL_HINT}");
    None
}

struct Prerequisites {
    node: PathBuf,
    chromium: PathBuf,
    parley: PathBuf,
}

fn prerequisites() -> Option<Prerequisites> {
    let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    let works = std::process::Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        return skip(&format!("`{} --version` does not run", node.display()));
    }
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return skip(&format!("{} is missing", chromium.display()));
    }
    let web = repo_root().join("client-sdk/cli/web");
    let playwright = [
        web.join("node_modules/playwright-core"),
        web.join("e2e/node_modules/playwright-core"),
    ];
    if !playwright.iter().any(|p| p.join("package.json").is_file()) {
        return skip(&format!("{} is missing", playwright[0].display()));
    }
    let parley = parley_tests::process::built_binary_path("parley");
    if !parley.is_file() {
        return skip(&format!(
            "{} is missing (`cargo test --workspace` builds it; or `cargo build --bin parley`)",
            parley.display()
        ));
    }
    Some(Prerequisites { node, chromium, parley })
}

/// A `parley ui` process with its own profile home, and the URL it printed.
struct Ui {
    url: String,
    _child: Child,
}

impl Ui {
    async fn start(parley: &Path, home: &Path, profile: &str, log: PathBuf) -> Self {
        let mut child = Command::new(parley)
            .arg("--home")
            .arg(home)
            .args(["--profile", profile, "ui", "--no-open"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("ui log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start parley ui");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read parley ui's stdout") {
                if let Some(start) = line.find("http://127.0.0.1:") {
                    return line[start..].split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!(
                "parley ui ({profile}) ended without printing its URL; see {}",
                log.display()
            )
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "parley ui ({profile}) printed no URL within 60 s; see {}",
                log.display()
            )
        });
        assert!(url.contains("#secret="), "parley ui printed {url:?}, without #secret=");
        // Keep reading stdout so that the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { url, _child: child }
    }

    /// Whether the page it serves is the embedded web app, not the "not built" fallback.
    async fn serves_the_web_app(&self) -> bool {
        let root = self.url.split('#').next().unwrap();
        let page = https_client(None)
            .get(root)
            .send()
            .await
            .expect("GET / of parley ui")
            .text()
            .await
            .expect("index.html");
        !page.contains("web app was not built")
    }
}

/// `parley --home … --profile bob2 login bob` and a first `sync` (which publishes the new
/// device's KeyPackages): a second device of bob, ready to be added to conversations.
async fn second_device_of_bob(parley: &Path, home: &Path, server: &str, dir: &Path) -> Result<String, String> {
    let password = dir.join("bob-password");
    let passphrase = dir.join("bob2-passphrase");
    let ca = dir.join("ca.pem");
    std::fs::write(&password, format!("{BOB_PASSWORD}\n")).unwrap();
    std::fs::write(&passphrase, format!("{PASSPHRASE}\n")).unwrap();
    let cli = |args: &[&str]| {
        let mut command = Command::new(parley);
        command
            .arg("--home")
            .arg(home)
            .args(["--profile", "bob2", "--server", server, "--ca-file"])
            .arg(&ca)
            .arg("--passphrase-file")
            .arg(&passphrase)
            .args(args)
            .stdin(Stdio::null());
        command
    };
    let mut said = String::new();
    for args in [
        &[
            "login",
            "bob",
            "--password-file",
            password.to_str().unwrap(),
            "--device-name",
            "Bob's second device",
        ][..],
        &["sync"][..],
    ] {
        let output = tokio::time::timeout(Duration::from_secs(60), cli(args).output())
            .await
            .map_err(|_| format!("parley {} took over 60 s", args[0]))?
            .map_err(|e| format!("parley {}: {e}", args[0]))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() {
            return Err(format!(
                "parley {} failed ({}): {}",
                args[0],
                output.status,
                text.trim()
            ));
        }
        said.push_str(&text);
    }
    Ok(said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_users_in_headless_chromium() {
    let Some(tools) = prerequisites() else {
        return;
    };
    // target/<profile>/parley -> target/e2e-artifacts
    let built = parley_tests::process::built_binary_path("parley");
    let artifacts = built.parent().and_then(Path::parent).unwrap().join("e2e-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    println!("ui_e2e: artefacts in {}", artifacts.display());

    // Two homeservers that reach each other.
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["a.test", "b.test"];
    let addrs = [free_loopback_addr(), free_loopback_addr()];
    let mut servers = Vec::new();
    for i in 0..2 {
        let peer = (ServerName::parse(names[1 - i]).unwrap(), addrs[1 - i]);
        servers.push(TestServer::spawn_federating_with(names[i], dirs[i].path(), addrs[i], vec![peer], |_| {}).await);
    }
    let (a, b) = (&servers[0], &servers[1]);
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, ca_pem()).unwrap();

    // One `parley ui` per user, each with its own home (bob's second device shares his).
    let (ann_home, bob_home) = (work.path().join("ann-home"), work.path().join("bob-home"));
    let ann_ui = Ui::start(&tools.parley, &ann_home, "ann", artifacts.join("parley-ui-ann.log")).await;
    let bob_ui = Ui::start(&tools.parley, &bob_home, "bob", artifacts.join("parley-ui-bob.log")).await;
    if !ann_ui.serves_the_web_app().await {
        assert!(
            !in_ci(),
            "ui_e2e: parley ui serves the \"web app was not built\" page although CI=true: \
             run `npm --prefix client-sdk/cli/web ci && npm --prefix client-sdk/cli/web run build` before `cargo build`"
        );
        eprintln!(
            "ui_e2e skipped: the parley binary has no web app embedded (client-sdk/cli/web/dist was not built); \
             run `npm --prefix client-sdk/cli/web ci && npm --prefix client-sdk/cli/web run build`, then `cargo build --bin parley`"
        );
        return;
    }

    let mut node = Command::new(&tools.node)
        .arg(repo_root().join(SCRIPT))
        .current_dir(repo_root())
        .env("ANN_URL", &ann_ui.url)
        .env("BOB_URL", &bob_ui.url)
        .env("ANN_SERVER", &a.url)
        .env("BOB_SERVER", &b.url)
        .env("CA_PEM_FILE", &ca)
        .env("ANN_USER", ANN)
        .env("BOB_USER", BOB)
        .env("BOB_PASSWORD", BOB_PASSWORD)
        .env("PASSPHRASE", PASSPHRASE)
        .env("ARTIFACTS", &artifacts)
        .env("CHROMIUM", &tools.chromium)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut stdin = node.stdin.take().unwrap();
    let mut stdout = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stderr = node.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });

    let mut transcript = String::new();
    let ran = tokio::time::timeout(SCRIPT_DEADLINE, async {
        while let Some(line) = stdout.next_line().await.expect("read the script's stdout") {
            println!("{line}");
            transcript.push_str(&line);
            transcript.push('\n');
            if line.trim() == "NEED_DEVICE_CHANGE" {
                let answer = match second_device_of_bob(&tools.parley, &bob_home, &b.url, work.path()).await {
                    Ok(said) => {
                        println!("ui_e2e: bob's second device is logged in and synced: {}", said.trim());
                        "DEVICE_CHANGED\n".to_owned()
                    }
                    Err(why) => {
                        println!("ui_e2e: {why}");
                        format!("FAILED {}\n", why.replace('\n', " "))
                    }
                };
                stdin.write_all(answer.as_bytes()).await.expect("write to the script");
                stdin.flush().await.expect("flush");
            }
        }
        node.wait().await.expect("wait for node")
    })
    .await;
    let errors = errors.await.unwrap_or_default();
    transcript.push_str(&errors);
    std::fs::write(artifacts.join("e2e.log"), &transcript).unwrap();
    let status = ran.unwrap_or_else(|_| {
        panic!(
            "{SCRIPT} did not finish within {} s\n{errors}\nartefacts in {}",
            SCRIPT_DEADLINE.as_secs(),
            artifacts.display()
        )
    });
    assert!(
        status.success(),
        "{SCRIPT} failed ({status}):\n{errors}\nartefacts (screenshots, failure.json, parley ui logs) in {}",
        artifacts.display()
    );
    println!("ui_e2e: passed; artefacts in {}", artifacts.display());
}
