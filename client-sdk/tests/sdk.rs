//! The SDK's `Client` against the mock homeserver in `support/`: every endpoint, the
//! bearer token only where the contract asks for it, error bodies, TLS trust, timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use parley_sdk::specs::client_api::{ChangePasswordRequest, LoginRequest, RegisterRequest};
use parley_sdk::specs::endpoints::{Auth, client, ops};
use parley_sdk::specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_sdk::specs::{ErrorBody, ErrorCode};
use parley_sdk::{Client, Error, Trust};
use support::{MockServer, Reply};

fn sdk(server: &MockServer) -> Client {
    Client::new(server.url.parse().expect("url"), Trust::CaFile(support::ca_file())).expect("client")
}

fn register(username: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        password: "a long enough password".into(),
        device_name: Some("laptop".into()),
        invite_token: None,
    }
}

#[tokio::test]
async fn every_endpoint_with_the_token_only_where_declared() {
    let server = MockServer::homeserver();
    let mut laptop = sdk(&server);
    assert_eq!(laptop.health().await.expect("health").status, "ok");

    let session = laptop.register(&register("alice")).await.expect("register");
    assert_eq!(session.user_id.as_str(), "alice@mock.parley");
    assert!(!laptop.has_access_token(), "register leaves the client as it was");
    laptop.set_session(&session);
    let me = laptop.whoami().await.expect("whoami");
    assert_eq!(me.device_id, session.device_id);

    let login = LoginRequest {
        username: "alice@mock.parley".into(),
        password: "a long enough password".into(),
        device_name: Some("phone".into()),
    };
    let phone_session = laptop.login(&login).await.expect("login");
    let phone = sdk(&server).with_token(phone_session.access_token.clone());
    assert_eq!(phone.access_token(), Some(phone_session.access_token.as_str()));

    let devices = laptop.devices().await.expect("devices").devices;
    assert_eq!(devices.len(), 2);
    assert!(devices.iter().any(|d| d.current && d.device_id == session.device_id));

    let renamed = laptop
        .rename_device(&phone_session.device_id, "Alice's phone")
        .await
        .expect("rename");
    assert_eq!(renamed.display_name, "Alice's phone");
    assert!(!renamed.current);

    let upload = UploadKeyPackagesRequest {
        key_packages: vec![vec![1, 2, 3].into(), vec![4, 5].into()],
    };
    let count = phone.upload_key_packages(&upload).await.expect("upload key packages");
    assert_eq!(count.available, 2);
    let claim = ClaimKeyPackagesRequest {
        user_id: session.user_id.clone(),
    };
    let claimed = laptop.claim_key_packages(&claim).await.expect("claim");
    assert_eq!(claimed.key_packages.len(), 1);
    assert_eq!(claimed.key_packages[0].device_id, phone_session.device_id);
    assert_eq!(claimed.key_packages[0].key_package.as_slice(), [1, 2, 3]);
    assert_eq!(claimed.devices_without_key_packages, vec![session.device_id.clone()]);
    assert_eq!(phone.key_package_count().await.expect("count").available, 1);

    let change = ChangePasswordRequest {
        current_password: "a long enough password".into(),
        new_password: "another long password".into(),
    };
    laptop.change_password(&change).await.expect("change password");
    let revoked = phone.whoami().await.expect_err("other devices are logged out");
    assert_eq!(revoked.code(), Some(ErrorCode::UnknownToken));
    assert_eq!(revoked.status(), Some(401));

    let tablet = laptop
        .login(&LoginRequest {
            password: "another long password".into(),
            ..login.clone()
        })
        .await
        .expect("login with the new password");
    laptop.delete_device(&tablet.device_id).await.expect("delete device");
    let gone = laptop
        .delete_device(&tablet.device_id)
        .await
        .expect_err("already deleted");
    assert_eq!(gone.code(), Some(ErrorCode::NotFound));

    laptop.logout().await.expect("logout");
    assert_eq!(
        laptop.whoami().await.expect_err("logged out").code(),
        Some(ErrorCode::UnknownToken)
    );

    // Every request went to a declared endpoint, with a token exactly when it needs one.
    let requests = server.requests();
    let declared: Vec<_> = client::ALL.iter().chain(ops::ALL).copied().collect();
    for req in &requests {
        let endpoint = declared
            .iter()
            .find(|e| req.is(**e))
            .unwrap_or_else(|| panic!("undeclared {req:?}"));
        let sent_token = req.header("authorization").is_some();
        assert_eq!(
            sent_token,
            endpoint.auth == Auth::AccessToken,
            "{} {}",
            req.method,
            req.path
        );
        if let Some(value) = req.header("authorization") {
            assert!(value.starts_with("Bearer pat_mock_secret_"), "{value}");
        }
    }
    for endpoint in client::ALL {
        assert!(
            requests.iter().any(|r| r.is(*endpoint)) || *endpoint == client::LOGOUT_ALL,
            "{endpoint:?} not called: {requests:#?}"
        );
    }
    let register_req = requests.iter().find(|r| r.is(client::REGISTER)).expect("register sent");
    assert_eq!(register_req.header("content-type"), Some("application/json"));
    assert_eq!(register_req.json()["device_name"], "laptop");
}

#[tokio::test]
async fn logout_all_and_tokens_on_anonymous_endpoints() {
    let server = MockServer::homeserver();
    let mut client = sdk(&server);
    let session = client.register(&register("bob")).await.expect("register");
    client.set_access_token(session.access_token.clone());
    // A client with a token still sends none to register (an anonymous endpoint).
    let err = client.register(&register("bob")).await.expect_err("taken");
    assert_eq!(err.code(), Some(ErrorCode::UsernameTaken));
    assert_eq!(err.to_string(), "username is taken (username_taken)");
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.is(client::REGISTER))
            .all(|r| r.header("authorization").is_none())
    );
    client.logout_all().await.expect("logout all");
    assert_eq!(
        client.devices().await.expect_err("logged out").code(),
        Some(ErrorCode::UnknownToken)
    );
    client.clear_access_token();
    assert!(matches!(client.whoami().await, Err(Error::NotLoggedIn)));
}

#[tokio::test]
async fn error_bodies_and_retry_after() {
    let server = MockServer::start(|req| {
        if req.is(client::LOGIN) {
            let body = ErrorBody {
                error: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after_ms: Some(6500),
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
    let server = MockServer::homeserver();
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
