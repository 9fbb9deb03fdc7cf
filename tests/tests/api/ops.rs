//! /health, /ready and /metrics.

use parley_tests::TestServer;

use crate::helpers::{PASSWORD, login_request, registered};

#[tokio::test]
async fn health_and_ready() {
    let server = TestServer::spawn().await;
    let sdk = server.sdk();
    assert_eq!(sdk.health().await.expect("health").status, "ok");
    let ready = sdk.ready().await.expect("ready");
    assert!(ready.ready && ready.database);
    assert_eq!(ready.schema_version, Some(ready.expected_schema_version));
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
