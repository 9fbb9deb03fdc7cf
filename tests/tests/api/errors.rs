//! Every refusal of the client API: its status, its stable code, and no state change.

use parley_specs::client_api::RegisterRequest;
use parley_specs::endpoints::{Method, client, ops};
use parley_specs::{DeviceId, ErrorBody, ErrorCode};
use parley_tests::TestServer;
use parley_tests::process::ProcessServer;
use parley_tests::server::{https_client, https_client_from, test_config};
use reqwest::StatusCode;

use crate::helpers::{PASSWORD, code, login_request, register_request, registered};

/// Sends a raw request and returns the status, the parsed error body and the Retry-After header.
async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, Option<ErrorBody>, Option<String>) {
    let http = server.http();
    let url = server.endpoint_url(path);
    let mut req = match method {
        Method::Get => http.get(url),
        Method::Post => http.post(url),
        Method::Put => http.put(url),
        Method::Delete => http.delete(url),
    };
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let bytes = resp.bytes().await.expect("body");
    let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
    (status, body, retry_after)
}

async fn expect_error(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
    want: ErrorCode,
) {
    let (status, error, _) = raw(server, method, path, token, Some(body.as_bytes().to_vec())).await;
    let error = error.unwrap_or_else(|| panic!("{method:?} {path} {body:?}: no JSON error body (status {status})"));
    assert_eq!(error.error, want, "{method:?} {path} {body:?}: {}", error.message);
    assert_eq!(status.as_u16(), want.http_status(), "{method:?} {path} {body:?}");
    assert!(!error.message.is_empty());
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let server = TestServer::spawn().await;
    let register = client::REGISTER.path;
    for body in [
        "",
        "{",
        "[]",
        "null",
        "{\"username\":\"x\"}",
        "{\"username\":1,\"password\":\"0123456789\"}",
        "{\"username\":\"x\",\"password\":\"0123456789\",\"extra\":true}",
        "\u{0}\u{1}binary",
    ] {
        expect_error(&server, Method::Post, register, None, body, ErrorCode::BadJson).await;
    }
    for name in ["Alice", "", "al ice", "al@ice", &"a".repeat(65), "ümlaut"] {
        let body = serde_json::json!({"username": name, "password": PASSWORD}).to_string();
        expect_error(&server, Method::Post, register, None, &body, ErrorCode::InvalidUsername).await;
    }
    for password in ["", "123456789", &"x".repeat(1025)] {
        let body = serde_json::json!({"username": "frank", "password": password}).to_string();
        expect_error(&server, Method::Post, register, None, &body, ErrorCode::WeakPassword).await;
    }
    let long_name = serde_json::json!({"username": "frank", "password": PASSWORD, "device_name": "d".repeat(101)});
    expect_error(
        &server,
        Method::Post,
        register,
        None,
        &long_name.to_string(),
        ErrorCode::InvalidParam,
    )
    .await;

    let (_, session) = registered(&server, "grace").await;
    let token = Some(session.access_token.as_str());
    let rename = client::RENAME_DEVICE.path_with(&[session.device_id.as_str()]);
    expect_error(
        &server,
        Method::Put,
        &rename,
        token,
        "{\"display_name\":\"\"}",
        ErrorCode::InvalidParam,
    )
    .await;
    expect_error(
        &server,
        Method::Put,
        &rename,
        token,
        "{\"name\":\"x\"}",
        ErrorCode::BadJson,
    )
    .await;
    let bad_id = client::RENAME_DEVICE.path_with(&["not-a-device!"]);
    expect_error(
        &server,
        Method::Put,
        &bad_id,
        token,
        "{\"display_name\":\"x\"}",
        ErrorCode::InvalidParam,
    )
    .await;

    let count: i64 = server.count("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(count, 1, "no refused registration left an account");
}

#[tokio::test]
async fn authentication_failures_get_401() {
    let server = TestServer::spawn().await;
    let whoami = client::WHOAMI.path;
    let (status, body, _) = raw(&server, Method::Get, whoami, None, None).await;
    assert_eq!(
        (status.as_u16(), body.map(|b| b.error)),
        (401, Some(ErrorCode::MissingToken))
    );
    let (status, body, _) = raw(&server, Method::Get, whoami, Some("pat_forged"), None).await;
    assert_eq!(
        (status.as_u16(), body.map(|b| b.error)),
        (401, Some(ErrorCode::UnknownToken))
    );

    // Every endpoint that needs a token refuses without one.
    for endpoint in client::ALL
        .iter()
        .filter(|e| e.auth == parley_specs::endpoints::Auth::AccessToken)
    {
        let path = endpoint.path_with(&["ABC", "ABC"]);
        let (status, body, _) = raw(&server, endpoint.method, &path, None, Some(b"{}".to_vec())).await;
        assert_eq!(
            body.map(|b| b.error),
            Some(ErrorCode::MissingToken),
            "{} {path}",
            endpoint.method.as_str()
        );
        assert_eq!(status.as_u16(), 401);
    }

    registered(&server, "heidi").await;
    let sdk = server.sdk();
    assert_eq!(
        code(sdk.login(&login_request("heidi", "wrong password!")).await),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code(sdk.login(&login_request("nobody", PASSWORD)).await),
        ErrorCode::InvalidCredentials
    );
    assert_eq!(
        code(sdk.login(&login_request("heidi@other.example", PASSWORD)).await),
        ErrorCode::InvalidCredentials
    );
    let devices: i64 = server.count("SELECT count(*) FROM devices", &[]).await;
    assert_eq!(devices, 1, "failed logins create no device");
}

#[tokio::test]
async fn closed_registration_and_invite_tokens_get_403() {
    let closed = TestServer::spawn_with(|c| c.registration.enabled = false).await;
    assert_eq!(
        code(closed.sdk().register(&register_request("ivan")).await),
        ErrorCode::RegistrationClosed
    );

    let invite = TestServer::spawn_with(|c| c.registration.invite_token = Some("let-me-in-please".into())).await;
    assert_eq!(
        code(invite.sdk().register(&register_request("ivan")).await),
        ErrorCode::InvalidInviteToken
    );
    let wrong = RegisterRequest {
        invite_token: Some("let-me-in-pleasE".into()),
        ..register_request("ivan")
    };
    assert_eq!(code(invite.sdk().register(&wrong).await), ErrorCode::InvalidInviteToken);
    let right = RegisterRequest {
        invite_token: Some("let-me-in-please".into()),
        ..register_request("ivan")
    };
    invite.sdk().register(&right).await.expect("the invite token admits");
}

#[tokio::test]
async fn other_accounts_devices_are_not_found() {
    let server = TestServer::spawn().await;
    let (judy, _) = registered(&server, "judy").await;
    let (_, mallory) = registered(&server, "mallory").await;
    assert_eq!(
        code(judy.rename_device(&mallory.device_id, "mine now").await),
        ErrorCode::NotFound
    );
    assert_eq!(code(judy.delete_device(&mallory.device_id).await), ErrorCode::NotFound);
    let ghost = DeviceId::parse("NOSUCHDEVICE").expect("id");
    assert_eq!(code(judy.delete_device(&ghost).await), ErrorCode::NotFound);
    let devices: i64 = server.count("SELECT count(*) FROM devices", &[]).await;
    assert_eq!(devices, 2);
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let server = TestServer::spawn().await;
    let (status, body, _) = raw(&server, Method::Get, "/client/v1/nope", None, None).await;
    assert_eq!(
        (status.as_u16(), body.map(|b| b.error)),
        (404, Some(ErrorCode::UnrecognizedEndpoint))
    );
    let (status, body, _) = raw(&server, Method::Delete, ops::HEALTH.path, None, None).await;
    assert_eq!(
        (status.as_u16(), body.map(|b| b.error)),
        (405, Some(ErrorCode::MethodNotAllowed))
    );
    let (status, body, _) = raw(&server, Method::Get, client::REGISTER.path, None, None).await;
    assert_eq!(
        (status.as_u16(), body.map(|b| b.error)),
        (405, Some(ErrorCode::MethodNotAllowed))
    );
}

/// A 405 names the methods the path has in `Allow` (RFC 9110 §15.5.6), whatever the
/// refused method: one the API uses elsewhere or one it never uses.
#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let server = TestServer::spawn().await;
    let http = server.http();
    let device_path = client::RENAME_DEVICE.path_with(&["ABC123"]);
    for (method, path, allowed) in [
        ("DELETE", ops::HEALTH.path.to_owned(), "GET"),
        ("GET", client::REGISTER.path.to_owned(), "POST"),
        ("TRACE", client::REGISTER.path.to_owned(), "POST"),
        ("PATCH", device_path.clone(), "PUT, DELETE"),
        ("POST", device_path, "PUT, DELETE"),
    ] {
        let response = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                server.endpoint_url(&path),
            )
            .send()
            .await
            .expect("request");
        let status = response.status();
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let body: ErrorBody = response.json().await.expect("an error body");
        assert_eq!(
            (status.as_u16(), body.error, allow.as_deref()),
            (405, ErrorCode::MethodNotAllowed, Some(allowed)),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn taken_usernames_get_409() {
    let server = TestServer::spawn().await;
    registered(&server, "kim").await;
    assert_eq!(
        code(server.sdk().register(&register_request("kim")).await),
        ErrorCode::UsernameTaken
    );
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let server = TestServer::spawn_with(|c| c.limits.max_body_bytes = 1024).await;
    let body = serde_json::json!({"username": "leo", "password": "p".repeat(2000)}).to_string();
    expect_error(
        &server,
        Method::Post,
        client::REGISTER.path,
        None,
        &body,
        ErrorCode::PayloadTooLarge,
    )
    .await;
    let count: i64 = server.count("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account_and_address() {
    let server = TestServer::spawn_with(|c| c.limits.login_failures_per_account_and_address_per_minute = 3).await;
    registered(&server, "mia").await;
    let body = serde_json::to_vec(&login_request("mia", "wrong password!")).expect("json");
    for _ in 0..3 {
        let (status, _, _) = raw(&server, Method::Post, client::LOGIN.path, None, Some(body.clone())).await;
        assert_eq!(status.as_u16(), 401);
    }
    let (status, error, retry_after) = raw(&server, Method::Post, client::LOGIN.path, None, Some(body)).await;
    assert_eq!(
        (status.as_u16(), error.as_ref().map(|e| e.error)),
        (429, Some(ErrorCode::RateLimited))
    );
    let secs: u64 = retry_after.expect("Retry-After header").parse().expect("seconds");
    assert!((1..=20).contains(&secs), "{secs}");
    assert!(error.and_then(|e| e.retry_after_ms).is_some_and(|ms| ms > 0));
    // From the same address even the right password waits now: answered, it would tell a
    // right guess from a wrong one.
    assert_eq!(
        code(server.sdk().login(&login_request("mia", PASSWORD)).await),
        ErrorCode::RateLimited
    );
    // Another account is not affected.
    registered(&server, "noah").await;
    server
        .sdk()
        .login(&login_request("noah", PASSWORD))
        .await
        .expect("other account logs in");
}

/// A login from a second loopback address (127.0.0.0/8 is all loopback): its status.
async fn login_from(server: &TestServer, from: [u8; 4], username: &str, password: &str) -> u16 {
    let response = https_client_from(from.into())
        .post(server.endpoint_url(client::LOGIN.path))
        .json(&login_request(username, password))
        .send()
        .await
        .expect("login request");
    response.status().as_u16()
}

/// Ten wrong passwords from one address used to spend the account's budget, so the
/// owner's right password from another address got 429 (and repeating that every minute
/// kept them out). Only failures count, per (account, address): the stranger's address
/// waits, the owner's does not, and the owner's own successes never count.
#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_owner_out_from_another() {
    let server = TestServer::spawn().await;
    registered(&server, "owen").await;
    let (stranger, owner) = ([127, 0, 0, 2], [127, 0, 0, 3]);
    for _ in 0..10 {
        assert_eq!(login_from(&server, stranger, "owen", "wrong password!").await, 401);
    }
    assert_eq!(login_from(&server, stranger, "owen", "wrong password!").await, 429);
    for _ in 0..12 {
        assert_eq!(
            login_from(&server, owner, "owen", PASSWORD).await,
            200,
            "the owner logs in"
        );
    }
    assert_eq!(
        login_from(&server, stranger, "owen", PASSWORD).await,
        429,
        "the stranger's address still waits"
    );
}

/// An attack from many addresses spends the account's slower hourly budget of failures:
/// then every address that failed waits, a new one gets one guess before it waits too,
/// and an address that has not failed (the owner's) still logs in.
#[tokio::test]
async fn an_attack_from_many_addresses_slows_them_all_but_not_the_owner() {
    let server = TestServer::spawn_with(|c| c.limits.login_failures_per_account_per_hour = 3).await;
    registered(&server, "pia").await;
    for i in 2..=4 {
        assert_eq!(login_from(&server, [127, 0, 0, i], "pia", "wrong password!").await, 401);
    }
    for i in 2..=4 {
        assert_eq!(
            login_from(&server, [127, 0, 0, i], "pia", "wrong password!").await,
            429,
            "127.0.0.{i} failed before"
        );
    }
    assert_eq!(login_from(&server, [127, 0, 0, 5], "pia", "wrong password!").await, 401);
    assert_eq!(login_from(&server, [127, 0, 0, 5], "pia", "wrong password!").await, 429);
    for _ in 0..3 {
        assert_eq!(
            login_from(&server, [127, 0, 0, 9], "pia", PASSWORD).await,
            200,
            "the owner logs in"
        );
    }
}

#[tokio::test]
async fn login_and_registration_are_rate_limited_per_address() {
    let server = TestServer::spawn_with(|c| c.limits.login_attempts_per_address_per_minute = 4).await;
    for i in 0..4 {
        let body = serde_json::to_vec(&login_request(&format!("user{i}"), "wrong password!")).expect("json");
        let (status, _, _) = raw(&server, Method::Post, client::LOGIN.path, None, Some(body)).await;
        assert_eq!(status.as_u16(), 401);
    }
    assert_eq!(
        code(server.sdk().register(&register_request("olga")).await),
        ErrorCode::RateLimited
    );
    assert_eq!(
        code(server.sdk().login(&login_request("user9", PASSWORD)).await),
        ErrorCode::RateLimited
    );
}

/// Behind a reverse proxy every client arrives from the proxy's address. With the proxy
/// in `[listen] trusted_proxies`, the per-address limits count the address it forwards in
/// `X-Forwarded-For`; from anyone else the header is ignored, so a client cannot spread
/// its attempts over addresses it makes up.
#[tokio::test]
async fn per_address_limits_count_the_client_a_trusted_proxy_names_and_ignore_anyone_elses_header() {
    let server = TestServer::spawn_with(|c| {
        c.limits.login_attempts_per_address_per_minute = 2;
        c.listen.trusted_proxies = vec!["127.0.0.5/32".parse().expect("net")];
    })
    .await;
    let attempt = |from: [u8; 4], forwarded: &'static str| {
        let request = https_client_from(from.into())
            .post(server.endpoint_url(client::LOGIN.path))
            .header("x-forwarded-for", forwarded)
            .json(&login_request("nobody", "wrong password!"));
        async move { request.send().await.expect("login request").status().as_u16() }
    };
    let proxy = [127, 0, 0, 5];
    assert_eq!(attempt(proxy, "203.0.113.1").await, 401);
    assert_eq!(attempt(proxy, "198.51.100.9, 203.0.113.1").await, 401);
    assert_eq!(
        attempt(proxy, "203.0.113.1").await,
        429,
        "that client's budget is spent"
    );
    assert_eq!(
        attempt(proxy, "203.0.113.2").await,
        401,
        "another client behind the proxy"
    );

    let stranger = [127, 0, 0, 6];
    assert_eq!(attempt(stranger, "198.51.100.1").await, 401);
    assert_eq!(attempt(stranger, "198.51.100.2").await, 401);
    assert_eq!(
        attempt(stranger, "198.51.100.3").await,
        429,
        "a header from an untrusted peer is ignored"
    );
}

#[tokio::test]
async fn a_lost_database_gives_503_not_500() {
    let server = TestServer::spawn().await;
    let (_, session) = registered(&server, "pat").await;
    parley_tests::postgres::drop_database(&server.config.database.url).await;
    // A stable code and a Retry-After, which the SDK honours a bounded number of times.
    let (status, body, retry_after) = raw(
        &server,
        Method::Get,
        client::WHOAMI.path,
        Some(&session.access_token),
        None,
    )
    .await;
    assert_eq!(status.as_u16(), 503);
    assert_eq!(body.map(|b| b.error), Some(ErrorCode::DatabaseUnavailable));
    assert_eq!(retry_after.as_deref(), Some("1"));
    let retrying = parley_sdk::Client::builder(
        server.url.parse().unwrap(),
        parley_sdk::Trust::CaPem(parley_tests::server::ca_pem().into_bytes()),
    )
    .retry_unavailable(parley_sdk::RetryPolicy {
        max_attempts: 2,
        max_total: std::time::Duration::from_secs(10),
    })
    .access_token(session.access_token.clone())
    .build()
    .unwrap();
    assert_eq!(code(retrying.whoami().await), ErrorCode::DatabaseUnavailable);
    // Login is never repeated by the SDK (a first attempt may have made a device).
    assert_eq!(
        code(server.sdk().login(&login_request("pat", PASSWORD)).await),
        ErrorCode::DatabaseUnavailable
    );
    let ready = server
        .http()
        .get(server.endpoint_url(ops::READY.path))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 503);
    let health = server
        .http()
        .get(server.endpoint_url(ops::HEALTH.path))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200, "the process itself is up");
}

/// A database that stops taking writes (as a primary demoted to a standby behind a proxy
/// does): writes answer `503 database_unavailable`, `/ready` says not ready, and the
/// read-only connections are not kept: once writes are possible again, requests succeed
/// without a restart.
#[tokio::test]
async fn a_read_only_database_gives_503_and_its_connections_are_not_kept() {
    let server = TestServer::spawn().await;
    let (client, _) = registered(&server, "ria").await;
    let url = server.config.database.url.clone();
    parley_tests::postgres::set_read_only(&url, true).await;
    let body = serde_json::to_vec(&register_request("rob")).unwrap();
    let (status, error, retry_after) = raw(&server, Method::Post, client::REGISTER.path, None, Some(body)).await;
    assert_eq!(status.as_u16(), 503);
    assert_eq!(error.map(|e| e.error), Some(ErrorCode::DatabaseUnavailable));
    assert!(retry_after.is_some());
    let ready = server.sdk().ready().await;
    assert_eq!(
        ready.map_err(|e| e.status()).err(),
        Some(Some(503)),
        "not ready on a read-only database"
    );

    parley_tests::postgres::set_read_only(&url, false).await;
    // The pool opened read-only connections meanwhile; they are dropped, not reused.
    let recovered = parley_tests::wait_until(std::time::Duration::from_secs(30), || async {
        server.sdk().register(&register_request("rob")).await.is_ok()
    })
    .await;
    assert!(recovered, "writes did not succeed again after the database took them");
    for _ in 0..20 {
        client.whoami().await.expect("reads and writes go on");
    }
    assert!(server.sdk().ready().await.expect("ready again").ready);
}

/// Random and hostile bodies on every endpoint: always a JSON error, never a 5xx.
#[tokio::test]
async fn no_input_causes_a_server_error() {
    use rand::{Rng, RngCore};
    let server = TestServer::spawn().await;
    let (_, session) = registered(&server, "quinn").await;
    let mut rng = rand::rng();
    let mut bodies: Vec<Vec<u8>> = vec![
        b"{\"username\":\"\\ud800\",\"password\":\"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\"}".to_vec(),
        b"{\"display_name\":\"\\u0000\"}".to_vec(),
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        b"{\"username\":\"a\",\"password\":\"1234567890\",\"device_name\":\"\\u001b[31m\"}".to_vec(),
    ];
    for _ in 0..20 {
        let mut bytes = vec![0u8; rng.random_range(0..300)];
        rng.fill_bytes(&mut bytes);
        bodies.push(bytes);
    }
    for endpoint in client::ALL.iter().chain(ops::ALL) {
        for token in [None, Some(session.access_token.as_str())] {
            for body in &bodies {
                let path = endpoint.path_with(&[session.device_id.as_str()]);
                let (status, error, _) = raw(&server, endpoint.method, &path, token, Some(body.clone())).await;
                assert!(
                    status.as_u16() < 500,
                    "{} {path}: {status} {error:?}",
                    endpoint.method.as_str()
                );
                if !status.is_success() {
                    assert!(
                        error.is_some(),
                        "{} {path}: {status} without a JSON error body",
                        endpoint.method.as_str()
                    );
                }
            }
        }
    }
}

/// 64 addresses × 30 attempts used to queue 1,920 Argon2 hashes behind each other, and a
/// legitimate login took 3.4 s instead of 21 ms. Hashes that would wait are now refused
/// at once with `503 unavailable` and `Retry-After`, and the owner gets in on a retry.
///
/// A process of its own, so that its flood does not slow the other tests' servers, which
/// share this test binary's hashing threads.
#[tokio::test]
async fn a_flood_of_logins_is_shed_with_retry_after_instead_of_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config().await;
    config.limits.login_attempts_per_address_per_minute = 100_000;
    config.limits.login_failures_per_account_and_address_per_minute = 100_000;
    let server = ProcessServer::start(config, dir.path()).await;
    server
        .sdk()
        .register(&register_request("owner"))
        .await
        .expect("register");
    let url = format!("{}{}", server.url, client::LOGIN.path);
    let flood: Vec<_> = (0..200)
        .map(|i| {
            let (http, url) = (https_client(None), url.clone());
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .json(&login_request(&format!("nobody{i}"), "wrong password"))
                    .send()
                    .await
                    .expect("an answer");
                let retry_after = response.headers().get("retry-after").cloned();
                let status = response.status();
                let body: ErrorBody = response.json().await.expect("a JSON error");
                (status, body.error, retry_after)
            })
        })
        .collect();
    let mut shed = 0;
    for answer in flood {
        let (status, error, retry_after) = answer.await.unwrap();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(error, ErrorCode::Unavailable);
                assert_eq!(retry_after.as_ref().and_then(|v| v.to_str().ok()), Some("1"));
                shed += 1;
            }
            other => assert_eq!(error, ErrorCode::InvalidCredentials, "{other}"),
        }
    }
    assert!(shed > 0, "200 concurrent password checks, none shed");

    // The owner's login goes through, at worst after a retry or two.
    let owner = server.sdk();
    let mut tries = 0;
    loop {
        tries += 1;
        match owner.login(&login_request("owner", PASSWORD)).await {
            Ok(_) => break,
            Err(e) if e.code() == Some(ErrorCode::Unavailable) && tries < 20 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("the owner's login: {e}"),
        }
    }
}
