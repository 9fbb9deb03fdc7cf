//! The three OpenAPI documents (`specs/openapi/`) hold under a third-party fuzzer:
//! schemathesis generates requests from each document, valid and invalid, sends them to
//! real running homeservers and checks every answer against the document (`--checks all`:
//! no server error, documented status codes, content types, headers and bodies, invalid
//! input refused, valid input accepted, `Allow` on 405, credentials enforced).
//!
//! - The client API of `home.parley`, as a registered account's device (its bearer token).
//! - The federation API of `home.parley`, through [`SigningProxy`]: a plain-HTTP loopback
//!   proxy that forwards each request over mutual TLS with the certificate of
//!   `peer.parley`, a real federating server, and signs it with that server's key, so the
//!   handlers behind authentication are fuzzed too.
//! - The admin API of `admin.parley`, with its admin token (a server of its own: the
//!   fuzzer edits federation policy lists through it).
//!
//! Generated requests name users and servers on arbitrary domains. No server here dials
//! outside loopback: each federates only with the servers on its `federation.allow` list,
//! which are static peers on loopback, so every other name is refused before it is ever
//! resolved (`Remote::call` checks the policy first). At the end the home server's
//! per-destination metrics name no other server.
//!
//! The run is deterministic (fixed `--seed`, one worker) and bounded (`--max-examples`):
//! about two minutes on two cores. schemathesis is found through `SCHEMATHESIS`, then
//! `PATH`, then where `.ci/run` installs it (`~/.cache/parley-ci/bin`); when it is missing
//! the test prints `skipped` and why, except under `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use parley_federation::server_key::ServerKeyring;
use parley_homeserver::devcerts::IssuedCert;
use parley_specs::ServerName;
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use parley_tests::TestServer;
use parley_tests::admin::enable_admin;
use parley_tests::server::{ca_file, federating_config, free_loopback_addr};
use parley_tests::signing_proxy::{SIGN_AS_PEER, SigningProxy};
use parley_tests::tools::{self, in_ci, repo_root};

/// Fixed, so every run sends the same requests.
const SEED: &str = "20261206";
/// Test cases per operation and phase: what fits in about two minutes here.
const MAX_EXAMPLES: &str = "35";

/// `SEED`, or `PARLEY_SCHEMATHESIS_SEED` to explore with another one.
fn seed() -> String {
    std::env::var("PARLEY_SCHEMATHESIS_SEED").unwrap_or_else(|_| SEED.to_owned())
}

/// `MAX_EXAMPLES`, or `PARLEY_SCHEMATHESIS_EXAMPLES` for a longer (or shorter) run.
fn max_examples() -> String {
    std::env::var("PARLEY_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.to_owned())
}
const HOME: &str = "home.parley";
const PEER: &str = "peer.parley";
const ADMIN: &str = "admin.parley";
const PASSWORD: &str = "correct horse battery staple";

const HINT: &str = "install with `bash .ci/run` (it puts a pinned schemathesis in a virtualenv under \
     ~/.cache/parley-ci), or `python3 -m pip install schemathesis`, or set SCHEMATHESIS=/path/to/schemathesis";

/// `SCHEMATHESIS`, else `schemathesis` on PATH, else where `.ci/run` puts it; `None`
/// (after saying why the test is skipped) when missing, except under CI.
fn schemathesis() -> Option<PathBuf> {
    tools::required("schemathesis", "SCHEMATHESIS", &["bin", "schemathesis/bin"], &[], HINT)
}

/// What one schemathesis run did, from its NDJSON report.
#[derive(Debug, Default)]
struct Report {
    document: String,
    requests: u64,
    operations: u64,
    /// Failed checks, by check name (`not_a_server_error`, ...).
    failures: BTreeMap<String, u64>,
    /// Answers with a 5xx status.
    server_errors: u64,
    /// Answers by status code.
    statuses: BTreeMap<u64, u64>,
    /// Errors of the run itself (schema not loaded, network), by message.
    errors: Vec<String>,
    /// A few failures, for the message: check, method and path, status.
    examples: Vec<String>,
    seconds: f64,
}

impl Report {
    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} requests over {} operations in {:.1} s, {} server errors, {} failed checks {:?}, {} errors; \
             answers by status {:?}",
            self.document,
            self.requests,
            self.operations,
            self.seconds,
            self.server_errors,
            self.failed(),
            self.failures,
            self.errors.len(),
            self.statuses
        )
    }
}

/// Reads schemathesis' NDJSON events: each line one event, `{"<EventType>": {...}}`.
/// Requests and check results are in each `ScenarioFinished`'s recorder.
fn parse_report(document: &str, ndjson: &str, seconds: f64) -> Report {
    let mut report = Report {
        document: document.to_owned(),
        seconds,
        ..Report::default()
    };
    let mut operations = BTreeSet::new();
    for line in ndjson.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line).expect("an NDJSON line");
        let Some((kind, body)) = event.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "ScenarioFinished" => {
                let recorder = &body["recorder"];
                if let Some(label) = recorder["label"].as_str() {
                    operations.insert(label.to_owned());
                }
                let interactions = recorder["interactions"].as_object().cloned().unwrap_or_default();
                for interaction in interactions.values() {
                    report.requests += 1;
                    if let Some(status) = interaction["response"]["status_code"].as_u64() {
                        *report.statuses.entry(status).or_default() += 1;
                        if status >= 500 {
                            report.server_errors += 1;
                        }
                    }
                }
                let checks = recorder["checks"].as_object().cloned().unwrap_or_default();
                for (case_id, results) in &checks {
                    for check in results.as_array().into_iter().flatten() {
                        if check["status"].as_str() == Some("failure") {
                            let name = check["name"].as_str().unwrap_or("?").to_owned();
                            *report.failures.entry(name.clone()).or_default() += 1;
                            if report.examples.len() < 40 {
                                let interaction = &interactions.get(case_id).cloned().unwrap_or_default();
                                let request = &interaction["request"];
                                let failure = &check["failure_info"]["failure"];
                                report.examples.push(format!(
                                    "{name}: {} {} -> {} {}",
                                    request["method"].as_str().unwrap_or("?"),
                                    request["uri"].as_str().unwrap_or("?"),
                                    interaction["response"]["status_code"],
                                    failure["title"].as_str().or(failure["message"].as_str()).unwrap_or(""),
                                ));
                            }
                        }
                    }
                }
            }
            "NonFatalError" | "FatalError" => {
                report.errors.push(body.to_string().chars().take(600).collect());
            }
            _ => {}
        }
    }
    report.operations = operations.len() as u64;
    report
}

/// The client API's operations that end the session they are called with (or every
/// session of the account): fuzzed last, with a session of their own, so that the other
/// operations are not answered `401` for most of the run.
const SESSION_ENDING: &[&str] = &["logout", "logoutAll", "changePassword", "deleteDevice"];
/// Not fuzzed: the inbox WebSocket. A successful request switches the connection to the
/// WebSocket protocol (101), which an HTTP fuzzer cannot speak; its handshake and frames
/// have tests of their own (`tests/tests/api/groups.rs`, `revocation.rs`).
const NOT_HTTP: &[&str] = &["inboxStream"];

/// Runs schemathesis on `spec` against `url` and reads its report, named `name`; `extra`
/// are more arguments (which operations).
async fn fuzz(
    tool: &Path,
    dir: &Path,
    name: &str,
    spec: &str,
    url: &str,
    headers: &[String],
    extra: &[String],
) -> Report {
    let spec_path = repo_root().join("specs/openapi").join(spec);
    let report_path = dir.join(format!("{name}.ndjson"));
    let output_path = dir.join(format!("{name}.txt"));
    let mut command = tokio::process::Command::new(tool);
    command
        .arg("--config-file")
        .arg(repo_root().join("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(&spec_path)
        .args(["--url", url])
        .args(["--seed", &seed(), "--max-examples", &max_examples(), "--workers", "1"])
        // `positive_data_acceptance` as schemathesis has it, except for the refusals of
        // binary content JSON Schema cannot describe (see tests/schemathesis/parley_hooks.py).
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--report", "ndjson"])
        .arg("--report-ndjson-path")
        .arg(&report_path)
        .arg("--tls-verify")
        .arg(ca_file())
        .args(["--request-timeout", "30"])
        .args(["--suppress-health-check", "all", "--warnings", "off"])
        .current_dir(dir)
        .env("SCHEMATHESIS_HOOKS", "parley_hooks")
        .env("PYTHONPATH", repo_root().join("tests/schemathesis"))
        .env("NO_COLOR", "1")
        // No __pycache__ beside the hooks in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output_path).unwrap())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for header in headers {
        command.args(["--header", header]);
    }
    command.args(extra);
    let started = Instant::now();
    let status = command.status().await.expect("run schemathesis");
    let seconds = started.elapsed().as_secs_f64();
    let ndjson = std::fs::read_to_string(&report_path).unwrap_or_default();
    let report = parse_report(name, &ndjson, seconds);
    let output = std::fs::read_to_string(&output_path).unwrap_or_default();
    eprintln!("{report}");
    if !status.success() || report.failed() > 0 || report.server_errors > 0 || !report.errors.is_empty() {
        eprintln!("--- schemathesis output ({name}, exit {status}) ---\n{output}\n--- end ---");
        for example in &report.examples {
            eprintln!("  {example}");
        }
        for error in &report.errors {
            eprintln!("  error: {error}");
        }
    }
    report
}

fn identity_in(dir: &Path) -> IssuedCert {
    IssuedCert {
        cert_pem: std::fs::read_to_string(dir.join("tls.pem")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("tls.key")).unwrap(),
    }
}

fn only(name: &ServerName) -> Option<BTreeSet<ServerName>> {
    Some(BTreeSet::from([name.clone()]))
}

/// The `destination` labels in a Prometheus text.
fn destinations(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("destination=\"").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_hold_under_schemathesis() {
    let Some(tool) = schemathesis() else { return };
    let version = std::process::Command::new(&tool)
        .arg("--version")
        .output()
        .expect("schemathesis --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    // The options, checks and report format used here are schemathesis 4's.
    if !version.starts_with("schemathesis, version 4.") {
        assert!(
            !in_ci(),
            "{} is {version:?}, not schemathesis 4; {HINT}",
            tool.display()
        );
        eprintln!("skipped: {} is {version:?}, not schemathesis 4; {HINT}", tool.display());
        return;
    }
    eprintln!("{version} at {}", tool.display());
    let started = Instant::now();

    let (home_dir, peer_dir, admin_dir, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (home_name, peer_name) = (ServerName::parse(HOME).unwrap(), ServerName::parse(PEER).unwrap());
    let (home_listen, peer_listen) = (free_loopback_addr(), free_loopback_addr());
    // Each federates with the other only, at a static loopback address.
    let home = TestServer::spawn_federating_with(
        HOME,
        home_dir.path(),
        home_listen,
        vec![(peer_name.clone(), peer_listen)],
        |f| f.allow = only(&peer_name),
    )
    .await;
    let peer = TestServer::spawn_federating_with(
        PEER,
        peer_dir.path(),
        peer_listen,
        vec![(home_name.clone(), home_listen)],
        |f| f.allow = only(&home_name),
    )
    .await;
    // The admin API's server federates with nobody (and has no peers to dial).
    let mut admin_config = federating_config(
        ADMIN,
        admin_dir.path(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Vec::new(),
        |f| f.allow = Some(BTreeSet::new()),
    )
    .await;
    let token_file = enable_admin(&mut admin_config, admin_dir.path());
    let admin = TestServer::start(admin_config).await;
    let admin_token = parley_homeserver::admin::token::load(&token_file).unwrap();

    let session = home
        .sdk()
        .register(&RegisterRequest {
            username: "fuzzer".into(),
            password: PASSWORD.into(),
            device_name: Some("schemathesis".into()),
            invite_token: None,
            signature_key: None,
        })
        .await
        .expect("register");
    // A second device, for the operations that end sessions.
    let second = home
        .sdk()
        .login(&LoginRequest {
            username: "fuzzer".into(),
            password: PASSWORD.into(),
            device_name: Some("schemathesis, session-ending operations".into()),
            signature_key: None,
            second_factor: None,
        })
        .await
        .expect("login");

    let proxy = SigningProxy::start(
        peer_name.clone(),
        ServerKeyring::load(&peer_dir.path().join("server.key")).unwrap(),
        &identity_in(peer_dir.path()),
        home_name.clone(),
        home.federation_addr.unwrap(),
    );

    let operations = |flag: &str| -> Vec<String> {
        SESSION_ENDING
            .iter()
            .flat_map(|id| [flag.to_owned(), (*id).to_owned()])
            .collect()
    };
    let client = fuzz(
        &tool,
        work.path(),
        "client-api.yaml",
        "client-api.yaml",
        &home.url,
        &[format!("Authorization: Bearer {}", session.access_token)],
        &[
            operations("--exclude-operation-id"),
            NOT_HTTP
                .iter()
                .flat_map(|id| ["--exclude-operation-id".to_owned(), (*id).to_owned()])
                .collect(),
        ]
        .concat(),
    )
    .await;
    let client_sessions = fuzz(
        &tool,
        work.path(),
        "client-api.yaml (session-ending operations)",
        "client-api.yaml",
        &home.url,
        &[format!("Authorization: Bearer {}", second.access_token)],
        &operations("--include-operation-id"),
    )
    .await;
    let federation = fuzz(
        &tool,
        work.path(),
        "federation-api.yaml",
        "federation-api.yaml",
        &proxy.url,
        &[format!("Authorization: {SIGN_AS_PEER}")],
        &[],
    )
    .await;
    let admin_report = fuzz(
        &tool,
        work.path(),
        "admin-api.yaml",
        "admin-api.yaml",
        &format!("http://{}", admin.admin_addr.unwrap()),
        &[format!("Authorization: Bearer {admin_token}")],
        &[],
    )
    .await;
    eprintln!(
        "schemathesis: {} requests in {:.1} s in all (seed {}, {} examples per operation and phase); \
         the proxy signed {} of {} federation requests as {PEER}",
        client.requests + client_sessions.requests + federation.requests + admin_report.requests,
        started.elapsed().as_secs_f64(),
        seed(),
        max_examples(),
        proxy.signed(),
        proxy.forwarded(),
    );

    // Nothing but the static loopback peer was ever a destination of the home server.
    let named = destinations(&home.metrics().await);
    eprintln!("destinations in the home server's metrics: {named:?}");
    assert!(
        named.iter().all(|d| d == PEER),
        "the home server had destinations other than its peer: {named:?}"
    );
    // Nor did any server queue anything for another server (the outbound sender's only
    // source of destinations).
    let sql = "SELECT count(*) FROM federation_destinations WHERE destination <> $1";
    assert_eq!(
        home.count(sql, &[&PEER]).await,
        0,
        "the home server queued for a stranger"
    );
    assert_eq!(
        admin.count(sql, &[&PEER]).await,
        0,
        "the admin API's server queued for someone"
    );

    for report in [&client, &client_sessions, &federation, &admin_report] {
        assert!(report.requests > 0, "{report}: no requests were made");
        assert!(report.errors.is_empty(), "{report}: {:?}", report.errors);
        assert_eq!(report.server_errors, 0, "{report}");
        assert_eq!(report.failed(), 0, "{report}: {:#?}", report.examples);
    }
    assert!(proxy.signed() > 0, "the federation API was fuzzed without signatures");
    proxy.stop().await;
    drop(peer);
}
