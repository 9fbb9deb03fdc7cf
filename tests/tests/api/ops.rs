//! /health, /ready and /metrics.

use parley_specs::ErrorCode;
use parley_tests::TestServer;
use parley_tests::process::ProcessServer;
use parley_tests::server::wait_until;
use std::time::Duration;

use crate::helpers::{PASSWORD, code, login_request, register_request, registered};

#[tokio::test]
async fn health_and_ready() {
    let server = TestServer::spawn().await;
    let sdk = server.sdk();
    assert_eq!(sdk.health().await.expect("health").status, "ok");
    let ready = sdk.ready().await.expect("ready");
    assert!(ready.ready && ready.database);
    assert_eq!(ready.schema_version, Some(ready.expected_schema_version));
}

/// `/metrics` faces the network on the client port: it answers only with the token of
/// `[metrics] token_file`, and a server without one serves no metrics at all.
#[tokio::test]
async fn metrics_need_the_metrics_token() {
    let server = TestServer::spawn().await;
    let url = server.endpoint_url(parley_specs::endpoints::ops::METRICS.path);
    let get = |token: Option<&str>| {
        let request = server.http().get(&url);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move { request.send().await.expect("GET /metrics") }
    };
    for token in [None, Some("ptok_not-the-token-but-long-enough-to-be-one"), Some("")] {
        let refused = get(token).await;
        assert_eq!(refused.status(), 401, "{token:?}");
        let body: parley_specs::ErrorBody = refused.json().await.expect("error body");
        assert_eq!(body.error, ErrorCode::InvalidMetricsToken);
    }
    let served = get(Some(parley_tests::server::metrics_token())).await;
    assert_eq!(served.status(), 200);
    assert!(
        served
            .text()
            .await
            .expect("text")
            .contains("parley_http_requests_total")
    );

    let without = TestServer::spawn_with(|c| c.metrics.token_file = None).await;
    let refused = without
        .http()
        .get(without.endpoint_url(parley_specs::endpoints::ops::METRICS.path))
        .bearer_auth(parley_tests::server::metrics_token())
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(refused.status(), 404);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let server = TestServer::spawn().await;
    registered(&server, "rita").await;
    let _ = server.sdk().login(&login_request("rita", "wrong password!")).await;
    server
        .sdk()
        .login(&login_request("rita", PASSWORD))
        .await
        .expect("login");
    // The database-wide gauges follow within their refresh interval (1 s in tests).
    let counted = wait_until(Duration::from_secs(30), || async {
        server.metrics().await.contains("parley_registered_users 1")
    })
    .await;
    assert!(counted, "the account gauge was never refreshed");
    let text = server.metrics().await;
    for needle in [
        r#"parley_http_requests_total{method="POST",route="/client/v1/register",status="201"} 1"#,
        r#"parley_http_requests_total{method="POST",route="/client/v1/login",status="401"} 1"#,
        r#"parley_http_requests_total{method="POST",route="/client/v1/login",status="200"} 1"#,
        "parley_http_request_duration_seconds_bucket",
        r#"parley_db_pool_connections{state="idle"}"#,
        r#"parley_db_pool_connections{state="in_use"}"#,
        "parley_registered_users 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    assert!(!text.contains(PASSWORD));
}

/// An operator runs `parley` and the homeserver from one shell: the CLI's variables
/// (`PARLEY_PASSPHRASE_FILE`, `PARLEY_PROFILE`, …) and the compose file's
/// (`PARLEY_DB_PASSWORD`, `PARLEY_UID`) are not the server's settings and must not stop it,
/// while its own (`PARLEY_REGISTRATION__ENABLED`) still apply.
#[tokio::test]
async fn the_homeserver_starts_beside_the_clis_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let config = parley_tests::server::test_config().await;
    let server = ProcessServer::start_with_env(
        config,
        dir.path(),
        &[
            ("PARLEY_PASSPHRASE_FILE", "/nonexistent/passphrase"),
            ("PARLEY_PROFILE", "work"),
            ("PARLEY_HOME", "/nonexistent/home"),
            ("PARLEY_SERVER", "https://chat.example.org"),
            ("PARLEY_CA_FILE", "/nonexistent/ca.pem"),
            ("PARLEY_DB_PASSWORD", "compose-only"),
            ("PARLEY_UID", "10001"),
            ("PARLEY_REGISTRATION__ENABLED", "false"),
        ],
    )
    .await;
    assert!(server.sdk().health().await.is_ok());
    assert_eq!(
        code(server.sdk().register(&register_request("uma")).await),
        ErrorCode::RegistrationClosed,
        "the server's own variables still apply"
    );
}
