//! `parley-homeserver dev` as a newcomer runs it: a real process that creates its own
//! PostgreSQL cluster and CA, serves HTTPS, and stops everything on Ctrl-C.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use parley_homeserver::embedded_pg::find_bin_dir;
use rustls::pki_types::pem::PemObject;

#[tokio::test]
async fn dev_starts_a_working_homeserver_and_stops_cleanly() {
    if find_bin_dir().is_none() {
        panic!("PostgreSQL server binaries are required (apt-get install postgresql)");
    }
    // Under /tmp so the postgres user can reach it when the tests run as root.
    let dir = tempfile::Builder::new()
        .prefix("parley-dev-test")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();

    let mut child = Command::new(env!("CARGO_BIN_EXE_parley-homeserver"))
        .args(["dev", "--port", &port.to_string(), "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn parley-homeserver dev");

    // Read the banner on a thread: a blocking read with a deadline.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    while !banner.contains("Press Ctrl-C") {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => banner.push_str(&(line + "\n")),
            Err(_) => {
                let _ = child.kill();
                panic!("no banner from `parley-homeserver dev` within 120 s; got:\n{banner}");
            }
        }
    }
    let ca = dir.path().join("tls/ca.pem");
    assert!(banner.contains(&format!("https://localhost:{port}")), "{banner}");
    assert!(banner.contains(&ca.display().to_string()), "{banner}");
    assert!(
        banner.contains("register alice"),
        "the banner names the next command:\n{banner}"
    );

    let client = https_client(&ca);
    let ready: serde_json::Value = client
        .get(format!("https://localhost:{port}/ready"))
        .send()
        .await
        .expect("GET /ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["ready"], true, "{ready}");

    // Ctrl-C: the homeserver and its PostgreSQL stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    assert!(
        !dir.path().join("postgres/data/postmaster.pid").exists(),
        "PostgreSQL is still running after Ctrl-C"
    );
}

fn https_client(ca: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("CA file");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.expect("pem")).expect("add");
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("client")
}

fn wait_with_deadline(child: &mut std::process::Child, deadline: Duration) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("parley-homeserver dev did not stop within {deadline:?} of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
