//! `parley-homeserver dev --domains 3` as a newcomer runs it: a real process that starts
//! three federating homeservers over one private PostgreSQL, prints how to talk across
//! them, and stops everything on SIGTERM. The printed `parley` lines are run as printed
//! (with a private CLI home and non-interactive password files added).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parley_homeserver::embedded_pg::find_bin_dir;
use parley_tests::process::{binary, parley_binary};
use parley_tests::server::https_client_trusting;

const WAIT: Duration = Duration::from_secs(120);

/// Splits a printed command line into words (double quotes group words).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// Runs a printed `parley …` line (its words after `parley`) in the CLI home `home`.
fn parley(home: &Path, args: &[String]) -> (bool, String) {
    let mut command = Command::new(parley_binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--home")
        .arg(home)
        .arg("--passphrase-file")
        .arg(home.join("passphrase"))
        .args(args);
    if args.iter().any(|a| a == "register") {
        command.arg("--password-file").arg(home.join("password"));
    }
    let out = command.stdin(Stdio::null()).output().expect("run parley");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn dev_with_three_domains_federates_and_the_printed_cli_lines_talk_across_them() {
    assert!(
        find_bin_dir().is_some(),
        "PostgreSQL server binaries are required (apt-get install postgresql)"
    );
    // Under /tmp so the postgres user can reach it when the tests run as root.
    let dir = tempfile::Builder::new()
        .prefix("parley-dev-federation")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = std::fs::File::create(dir.path().join("dev.log")).unwrap();

    let spawned = Instant::now();
    let mut child = Command::new(binary())
        .args([
            "dev",
            "--domains",
            "3",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn parley-homeserver dev --domains 3");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    while !banner.contains("Press Ctrl-C") {
        match rx.recv_timeout(WAIT) {
            Ok(line) => banner.push_str(&(line + "\n")),
            Err(_) => {
                let _ = child.kill();
                panic!("no banner from `parley-homeserver dev --domains 3` within {WAIT:?}; got:\n{banner}");
            }
        }
    }
    let banner_after = spawned.elapsed();
    let ready_in: f64 = banner
        .split_once("ready in ")
        .and_then(|(_, rest)| rest.split_once(" s)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("the banner says how long it took:\n{banner}"));

    // Three domains, each with a client URL answering on 127.0.0.1 (an IP SAN).
    let urls: Vec<&str> = banner
        .lines()
        .filter_map(|l| l.trim().strip_prefix("client API"))
        .map(str::trim)
        .collect();
    assert_eq!(urls.len(), 3, "{banner}");
    for name in ["domain1.localhost", "domain2.localhost", "domain3.localhost"] {
        assert!(banner.contains(name), "{banner}");
    }
    let ca_file = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("CA file"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("the banner names the CA file:\n{banner}"));
    let http = https_client_trusting(&std::fs::read_to_string(ca_file).unwrap(), None);
    for url in &urls {
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let ready: serde_json::Value = http
            .get(format!("{url}/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["ready"], true, "{url}: {ready}");
    }

    // The printed conversation, run as printed.
    let home = dir.path().join("cli");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("password"), "a long enough password\n").unwrap();
    std::fs::write(home.join("passphrase"), "a long enough store passphrase\n").unwrap();
    let lines: Vec<Vec<String>> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("parley "))
        .map(|l| words(l).into_iter().skip(1).collect())
        .collect();
    assert!(lines.len() >= 6, "{banner}");
    let mut group = None::<String>;
    let mut said = None::<String>;
    let home_for_blocking = home.clone();
    for mut args in lines {
        if let Some(group) = &group {
            for arg in &mut args {
                if arg == "GROUP" {
                    *arg = group.clone();
                }
            }
        }
        if let Some(at) = args.iter().position(|a| a == "send") {
            said = args.get(at + 2).cloned();
        }
        let is_sync_or_history = args.iter().any(|a| a == "sync" || a == "history");
        let home = home_for_blocking.clone();
        if is_sync_or_history {
            // Delivery across domains is asynchronous: sync until the message is there.
            let said = said.clone().expect("a message was sent before");
            let deadline = Instant::now() + WAIT;
            let mut seen = String::new();
            loop {
                let (home, args2) = (home.clone(), args.clone());
                let (ok, out) = tokio::task::spawn_blocking(move || parley(&home, &args2))
                    .await
                    .unwrap();
                assert!(ok, "parley {args:?}: {out}");
                seen.push_str(&out);
                if seen.contains(&said) || args.iter().any(|a| a == "history") {
                    break;
                }
                assert!(Instant::now() < deadline, "{said:?} never arrived: {seen}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(seen.contains(&said), "parley {args:?}: {seen}");
            assert!(seen.contains("alice@domain1.localhost"), "{seen}");
            continue;
        }
        let printed = args.clone();
        let (ok, out) = tokio::task::spawn_blocking(move || parley(&home, &printed))
            .await
            .unwrap();
        assert!(ok, "parley {args:?}: {out}");
        if args.ends_with(&["group".to_owned(), "create".to_owned()]) {
            let id = out
                .split_once("Created group ")
                .and_then(|(_, rest)| rest.split_once(". "))
                .map(|(id, _)| id.to_owned())
                .unwrap_or_else(|| panic!("a group id: {out}"));
            assert!(id.ends_with("@domain1.localhost"), "{id}");
            group = Some(id);
        }
    }
    assert!(
        group.is_some() && said.is_some(),
        "the banner creates a group and sends"
    );

    // SIGTERM: the homeservers and their PostgreSQL stop.
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > WAIT {
            let _ = child.kill();
            panic!("parley-homeserver dev --domains 3 did not stop within {WAIT:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let stopped_in = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        !dir.path().join("data/postgres/data/postmaster.pid").exists(),
        "PostgreSQL is still running after SIGTERM"
    );
    println!(
        "dev --domains 3: ready in {ready_in:.1} s by its own clock (banner {banner_after:.2?} after spawn, \
         PostgreSQL cluster created from scratch); stopped {stopped_in:.2?} after SIGTERM"
    );
}
