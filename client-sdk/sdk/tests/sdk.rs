//! What the SDK's `Client` does with responses a real homeserver never sends (a proxy's
//! HTML error page, a server that hangs, an untrusted certificate), against the stub
//! HTTPS server in `support/`. The real homeserver is exercised by the workspace's tests/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use parley_sdk::specs::client_api::LoginRequest;
use parley_sdk::specs::endpoints::{client, ops};
use parley_sdk::specs::{ErrorBody, ErrorCode};
use parley_sdk::{Client, Error, Trust};
use support::{MockServer, Reply};

fn sdk(server: &MockServer) -> Client {
    Client::new(server.url.parse().expect("url"), Trust::CaFile(support::ca_file())).expect("client")
}

#[tokio::test]
async fn error_bodies_and_retry_after() {
    let server = MockServer::start(|req| {
        if req.is(client::LOGIN) {
            let body = ErrorBody {
                error: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after_ms: Some(6500),
                current_epoch: None,
            };
            Reply::json(429, &body).with_header("retry-after", "7")
        } else if req.is(ops::HEALTH) {
            Reply::text(
                502,
                "text/html",
                "<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>",
            )
        } else if req.is(ops::READY) {
            Reply::text(200, "application/json", "{\"ready\": \"yes\"")
        } else if req.is(client::WHOAMI) {
            Reply::text(200, "application/json", vec![b' '; 9 * 1024 * 1024])
        } else {
            Reply::text(503, "text/plain", "")
        }
    });
    let client = sdk(&server).with_token("t");
    let login = LoginRequest {
        username: "a".into(),
        password: "p".into(),
        device_name: None,
        signature_key: None,
        second_factor: None,
    };

    let limited = client.login(&login).await.expect_err("rate limited");
    assert_eq!(limited.code(), Some(ErrorCode::RateLimited));
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)), "the header wins");
    assert!(matches!(&limited, Error::Api { status: 429, body, .. } if body.retry_after_ms == Some(6500)));

    let proxy = client.health().await.expect_err("HTML error page");
    assert_eq!(proxy.code(), Some(ErrorCode::Unknown));
    assert_eq!(proxy.status(), Some(502));
    assert!(proxy.to_string().starts_with("HTTP status 502: <html>"), "{proxy}");

    let garbage = client.ready().await.expect_err("truncated JSON");
    assert!(
        matches!(&garbage, Error::Decode { url, .. } if url.ends_with("/ready")),
        "{garbage:?}"
    );

    let huge = client.whoami().await.expect_err("oversized");
    assert!(
        matches!(&huge, Error::Decode { reason, .. } if reason.contains("larger than")),
        "{huge:?}"
    );

    let empty = client.devices().await.expect_err("empty 503");
    assert_eq!(empty.to_string(), "HTTP status 503 (unknown)");
}

#[tokio::test]
async fn base_url_path_prefix_is_kept() {
    let server = MockServer::start(|_| Reply::json(200, &serde_json::json!({"status": "ok"})));
    let client = Client::new(
        format!("{}/parley/", server.url).parse().unwrap(),
        Trust::CaFile(support::ca_file()),
    )
    .unwrap();
    client.health().await.expect("health");
    assert_eq!(server.requests()[0].path, "/parley/health");
}

#[tokio::test]
async fn untrusted_certificates_are_refused() {
    let server = MockServer::start(|_| Reply::empty());
    let pem = std::fs::read(support::testdata("other-ca.pem")).unwrap();
    let client = Client::new(server.url.parse().unwrap(), Trust::CaPem(pem)).unwrap();
    let err = client.health().await.expect_err("unknown issuer");
    match &err {
        Error::Transport { url, reason } => {
            assert_eq!(url, &server.url);
            assert!(
                reason.starts_with("TLS: ") && reason.contains("UnknownIssuer"),
                "{reason}"
            );
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn slow_servers_time_out() {
    let server = MockServer::start(|_| {
        std::thread::sleep(Duration::from_secs(3));
        Reply::empty()
    });
    let client = Client::builder(server.url.parse().unwrap(), Trust::CaFile(support::ca_file()))
        .timeout(Duration::from_millis(300))
        .access_token("t")
        .build()
        .unwrap();
    let err = client.logout().await.expect_err("timeout");
    assert_eq!(err.to_string(), format!("cannot reach {}: timed out", server.url));
}

#[tokio::test]
async fn setup_errors() {
    let url = "https://127.0.0.1:9".parse().unwrap();
    let missing = Client::new(url, Trust::CaFile("/nonexistent/ca.pem".into())).expect_err("no CA file");
    assert!(
        missing
            .to_string()
            .starts_with("cannot use CA file /nonexistent/ca.pem: "),
        "{missing}"
    );
    let http = Client::new("http://127.0.0.1:9".parse().unwrap(), Trust::CaFile(support::ca_file()));
    assert!(matches!(http, Err(Error::InvalidUrl(_))));
}
