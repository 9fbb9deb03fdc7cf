//! The operator's admin API on its own listener, and the `parley-homeserver admin` CLI.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use parley_homeserver::Application;
use parley_specs::endpoints::{Method, admin};
use parley_specs::keys_api::ClaimKeyPackagesRequest;
use parley_specs::{ErrorCode, ServerName};
use parley_tests::TestServer;
use parley_tests::admin::{AdminApi, enable_admin};
use parley_tests::server::{free_loopback_addr, wait_until};
use serde_json::json;

use crate::helpers::{
    PASSWORD, code, device, logged_in, login_request, register_request, registered, upload_key_packages, version_from,
};

/// A server with an admin API whose token lives in `dir`.
async fn admin_server(dir: &Path) -> TestServer {
    TestServer::spawn_with(|config| {
        enable_admin(config, dir);
    })
    .await
}

fn error_code(body: &serde_json::Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_request_needs_the_admin_token_and_only_the_admin_listener_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    assert_ne!(server.admin_addr, Some(server.addr));

    for endpoint in admin::ALL {
        let path = endpoint.path_with(&["alice", "ABCDEF"]);
        for token in [None, Some("padm_not-the-token-but-long-enough-to-be-one"), Some("")] {
            let (status, body) = api.send_as(token, endpoint.method, &path, Some(json!({}))).await;
            assert_eq!(
                (status, error_code(&body)),
                (401, "invalid_admin_token"),
                "{} {path} with {token:?}: {body}",
                endpoint.method.as_str()
            );
        }
    }
    // Nothing is routed without the token, not even to a 404.
    let (status, body) = api.send_as(None, Method::Get, "/admin/v1/nope", None).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_admin_token"));
    let (status, body) = api.send_as(Some(&api.token), Method::Get, "/admin/v1/nope", None).await;
    assert_eq!((status, error_code(&body)), (404, "unrecognized_endpoint"));
    let (status, body) = api
        .send_as(Some(&api.token), Method::Delete, admin::STATS.path, None)
        .await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));

    // The client listener has no admin API, with or without the token.
    for endpoint in admin::ALL {
        let url = server.endpoint_url(&endpoint.path_with(&["alice", "ABCDEF"]));
        let response = server.http().get(url).bearer_auth(&api.token).send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert!(
            status == 404 && error_code(&body) == "unrecognized_endpoint"
                || status == 405 && error_code(&body) == "method_not_allowed",
            "{} on the client listener: {status} {body}",
            endpoint.path
        );
    }

    // Admin requests are counted like the others, by route template.
    api.ok(admin::STATS, &[], None).await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("route=\"/admin/v1/stats\""),
        "admin requests appear in parley_http_requests_total"
    );

    let plain = TestServer::spawn().await;
    assert_eq!(plain.admin_addr, None, "no [admin], no admin listener");
}

#[tokio::test]
async fn off_loopback_the_admin_api_speaks_only_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(|config| {
        enable_admin(config, dir.path());
        if let Some(admin) = config.admin.as_mut() {
            admin.listen = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
        }
    })
    .await;
    let port = server.admin_addr.unwrap().port();
    let token = parley_homeserver::admin::token::load(&server.config.admin.as_ref().unwrap().token_file).unwrap();
    let response = server
        .http()
        .get(format!("https://localhost:{port}{}", admin::STATS.path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("HTTPS with the [tls] certificate");
    assert_eq!(response.status(), 200);
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{}", admin::STATS.path))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "no plain HTTP off loopback"
    );
}

#[tokio::test]
async fn a_token_file_others_can_read_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let mut config = server.config.clone();
    config.listen.client = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    let admin = config.admin.as_mut().unwrap();
    admin.listen = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    let token_file = admin.token_file.clone();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Application::build(config.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("chmod 600"), "{error}");

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&token_file, "short").unwrap();
    let error = Application::build(config).await.err().expect("refused").to_string();
    assert!(error.contains("at least 32"), "{error}");
}

#[tokio::test]
async fn deactivation_revokes_every_session_and_key_package_until_reactivation() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    let (alice, alice_session) = registered(&server, "alice").await;
    let (phone, phone_session) = logged_in(&server, "alice").await;
    upload_key_packages(&alice, &alice_session, 2).await;
    upload_key_packages(&phone, &phone_session, 1).await;
    let (bob, _) = registered(&server, "bob").await;
    registered(&server, "alina").await;

    let found = api.ok(admin::GET_USER, &["alice"], None).await;
    assert_eq!(found["user_id"], "alice@test.parley");
    assert_eq!(
        (found["devices"].as_i64(), &found["deactivated"]),
        (Some(2), &json!(false))
    );
    let same = api.ok(admin::GET_USER, &["alice@test.parley"], None).await;
    assert_eq!(same, found, "a full user id names the same account");
    let page = api
        .send_as(Some(&api.token), Method::Get, "/admin/v1/users?search=ali", None)
        .await
        .1;
    let names: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice@test.parley", "alina@test.parley"]);

    let done = api.ok(admin::DEACTIVATE_USER, &["alice"], None).await;
    assert_eq!(done["revoked_devices"], 2);
    assert_eq!(done["deleted_key_packages"], 3);
    assert_eq!(done["user"]["deactivated"], true);
    assert!(done["user"]["deactivated_at"].is_string());

    // Every token of the account is refused at once.
    assert_eq!(code(alice.whoami().await), ErrorCode::UnknownToken);
    assert_eq!(code(phone.whoami().await), ErrorCode::UnknownToken);
    // Logins are refused, with the new code only for the right password.
    assert_eq!(
        code(server.sdk().login(&login_request("alice", PASSWORD)).await),
        ErrorCode::AccountDeactivated
    );
    assert_eq!(
        code(server.sdk().login(&login_request("alice", "not the password!")).await),
        ErrorCode::InvalidCredentials
    );
    // Nobody can add the account's devices to a group any more.
    let claimed = bob
        .claim_key_packages(&ClaimKeyPackagesRequest {
            user_id: alice_session.user_id.clone(),
        })
        .await
        .expect("claim");
    assert!(claimed.key_packages.is_empty(), "{:?}", claimed.key_packages.len());
    let stored: i64 = server.count("SELECT count(*) FROM key_packages", &[]).await;
    assert_eq!(stored, 0);
    // The name stays taken.
    assert_eq!(
        code(server.sdk().register(&register_request("alice")).await),
        ErrorCode::UsernameTaken
    );
    let stats = api.ok(admin::STATS, &[], None).await;
    assert_eq!(
        (stats["users"].as_i64(), stats["deactivated_users"].as_i64()),
        (Some(3), Some(1))
    );

    let back = api.ok(admin::REACTIVATE_USER, &["alice"], None).await;
    assert_eq!(
        (&back["deactivated"], back["devices"].as_i64()),
        (&json!(false), Some(0))
    );
    let (again, _) = logged_in(&server, "alice").await;
    again.whoami().await.expect("a reactivated account logs in and works");

    // Unknown, malformed and foreign accounts.
    for (user, status, want) in [
        ("nobody", 404, "not_found"),
        ("alice@other.example", 404, "not_found"),
        ("Not A Name", 400, "invalid_param"),
    ] {
        for endpoint in [
            admin::GET_USER,
            admin::DEACTIVATE_USER,
            admin::REACTIVATE_USER,
            admin::LIST_DEVICES,
        ] {
            let (got, body) = api.call(endpoint, &[user], None).await;
            assert_eq!((got, error_code(&body)), (status, want), "{} {user}", endpoint.path);
        }
    }
    let (status, body) = api
        .send_as(Some(&api.token), Method::Get, "/admin/v1/users?limit=0", None)
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_param"));
}

#[tokio::test]
async fn users_are_listed_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    for name in ["dave", "carol", "erin"] {
        registered(&server, name).await;
    }
    let first = api
        .send_as(Some(&api.token), Method::Get, "/admin/v1/users?limit=2", None)
        .await
        .1;
    assert_eq!(first["users"][0]["user_id"], "carol@test.parley");
    assert_eq!(first["users"][1]["user_id"], "dave@test.parley");
    assert_eq!(first["next_after"], "dave");
    let second = api
        .send_as(
            Some(&api.token),
            Method::Get,
            "/admin/v1/users?limit=2&after=dave",
            None,
        )
        .await
        .1;
    assert_eq!(second["users"].as_array().unwrap().len(), 1);
    assert_eq!(second["users"][0]["user_id"], "erin@test.parley");
    assert!(second.get("next_after").is_none());
}

#[tokio::test]
async fn a_password_reset_ends_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    let (laptop, _) = registered(&server, "frank").await;
    let (phone, _) = logged_in(&server, "frank").await;

    let (status, body) = api
        .call(admin::RESET_PASSWORD, &["frank"], Some(json!({"password": "short"})))
        .await;
    assert_eq!((status, error_code(&body)), (400, "weak_password"));
    let (status, body) = api.call(admin::RESET_PASSWORD, &["frank"], Some(json!({}))).await;
    assert_eq!((status, error_code(&body)), (400, "bad_json"));
    laptop.whoami().await.expect("a refused reset changes nothing");

    let new_password = "a brand new password";
    let done = api
        .ok(
            admin::RESET_PASSWORD,
            &["frank"],
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(done["revoked_devices"], 2);
    assert_eq!(code(laptop.whoami().await), ErrorCode::UnknownToken);
    assert_eq!(code(phone.whoami().await), ErrorCode::UnknownToken);
    assert_eq!(
        code(server.sdk().login(&login_request("frank", PASSWORD)).await),
        ErrorCode::InvalidCredentials
    );
    server
        .sdk()
        .login(&login_request("frank", new_password))
        .await
        .expect("the new password works");
    let hash: String = server
        .db()
        .await
        .query_one("SELECT password_hash FROM accounts WHERE localpart = 'frank'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let (status, body) = api
        .call(
            admin::RESET_PASSWORD,
            &["nobody"],
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn a_revoked_device_loses_its_token_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    let (laptop, laptop_session) = registered(&server, "grace").await;
    let (phone, phone_session) = logged_in(&server, "grace").await;
    upload_key_packages(&phone, &phone_session, 2).await;

    let list = api.ok(admin::LIST_DEVICES, &["grace"], None).await;
    assert_eq!(list["user_id"], "grace@test.parley");
    let devices = list["devices"].as_array().unwrap();
    let ids: Vec<&str> = devices.iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [laptop_session.device_id.as_str(), phone_session.device_id.as_str()]
    );
    assert_eq!(devices[1]["unclaimed_key_packages"], 2);
    assert_eq!(devices[0]["inbox_entries"], 0);

    let (status, _) = api
        .call(admin::REVOKE_DEVICE, &["grace", phone_session.device_id.as_str()], None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(code(phone.whoami().await), ErrorCode::UnknownToken);
    laptop.whoami().await.expect("the other device stays logged in");
    let (status, body) = api
        .call(admin::REVOKE_DEVICE, &["grace", phone_session.device_id.as_str()], None)
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    // Another account's device is not found under this one.
    let (_, other) = registered(&server, "heidi").await;
    let (status, body) = api
        .call(admin::REVOKE_DEVICE, &["grace", other.device_id.as_str()], None)
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = api.call(admin::REVOKE_DEVICE, &["grace", "bad id!"], None).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_param"));
    let list = api.ok(admin::LIST_DEVICES, &["grace"], None).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn stats_count_what_was_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    let mut ann = device(&server, dir.path(), "ann", true).await;
    let group = ann.create_group().await.expect("group");
    for text in ["one", "two"] {
        ann.send_text(&group, text, None).await.expect("send");
    }
    registered(&server, "ben").await;
    logged_in(&server, "ben").await;
    api.ok(admin::DEACTIVATE_USER, &["ben"], None).await;

    let stats = api.ok(admin::STATS, &[], None).await;
    let db_count = |sql: &'static str| {
        let server = &server;
        async move { server.count(sql, &[]).await }
    };
    assert_eq!(stats["server_name"], "test.parley");
    assert_eq!(stats["users"], 2);
    assert_eq!(stats["deactivated_users"], 1);
    assert_eq!(stats["devices"], 1, "ann's device; ben's went with the deactivation");
    assert_eq!(stats["groups_hubbed"], 1);
    assert_eq!(stats["groups_followed"], 0);
    let messages = db_count("SELECT count(*) FROM group_messages").await;
    assert!(messages >= 2, "{messages}");
    assert_eq!(stats["stored_messages"], messages);
    assert_eq!(
        stats["undelivered_inbox_entries"],
        db_count("SELECT count(*) FROM inbox").await
    );
    let unclaimed = db_count("SELECT count(*) FROM key_packages WHERE NOT last_resort").await;
    assert!(unclaimed > 0, "ann's device published KeyPackages");
    assert_eq!(stats["unclaimed_key_packages"], unclaimed);
    assert_eq!(stats["federation_queue"], 0);
    assert_eq!(stats["federation_destinations"], 0);
    assert_eq!(
        stats["schema_version"],
        parley_homeserver::db::expected_schema_version()
    );
    assert!(stats["database_size_bytes"].as_i64().unwrap() > 1_000_000);
}

#[tokio::test]
async fn destinations_show_a_down_server_backing_off_and_retry_sends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // c.test is down: a loopback port nobody listens on. After a failure it would next be
    // tried 30 to 60 s later.
    let down = (ServerName::parse("c.test").unwrap(), free_loopback_addr());
    let mut config = parley_tests::server::federating_config(
        "a.test",
        dir.path(),
        (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        vec![down],
        |f| {
            f.retry_initial_ms = 60_000;
            f.retry_max_secs = 600;
        },
    )
    .await;
    enable_admin(&mut config, dir.path());
    let server = TestServer::start(config).await;
    let api = AdminApi::of(&server);
    assert_eq!(
        api.ok(admin::LIST_DESTINATIONS, &[], None).await["destinations"],
        json!([])
    );

    // A real stored message of a local group, queued for c.test as the hub queues it.
    let mut ann = device(&server, dir.path(), "ann", true).await;
    let group = ann.create_group().await.expect("group");
    let sent = ann.send_text(&group, "for c.test", None).await.expect("send");
    let db = server.db().await;
    db.execute(
        "INSERT INTO federation_destinations (destination) VALUES ('c.test')",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO federation_queue (destination, group_id, seq) VALUES ('c.test', $1, $2)",
        &[&group.as_str(), &sent.seq],
    )
    .await
    .unwrap();

    let c_test = || async {
        let list = api.ok(admin::LIST_DESTINATIONS, &[], None).await;
        list["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["server"] == "c.test")
            .cloned()
            .unwrap()
    };
    let failed = wait_until(Duration::from_secs(30), || async { c_test().await["failures"] == 1 }).await;
    assert!(failed, "the send to c.test failed and was recorded: {}", c_test().await);
    let shown = c_test().await;
    assert_eq!(shown["queue_depth"], 1);
    assert!(shown["oldest_queued_age_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(shown["backing_off"], true);
    assert_eq!(shown["allowed"], true);
    assert!(!shown["last_error"].as_str().unwrap_or_default().is_empty(), "{shown}");
    let failures_metric = || async {
        let metrics = server.metrics().await;
        metrics
            .lines()
            .find(|l| l.starts_with("parley_federation_send_failures_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default()
    };
    assert_eq!(failures_metric().await, 1.0);

    let retried = api.ok(admin::RETRY_DESTINATION, &["c.test"], None).await;
    assert_eq!(retried["server"], "c.test");
    assert_eq!(retried["failures"], 0);
    assert_eq!(retried["backing_off"], false);
    assert!(retried.get("last_error").is_none());
    // Sent again at once (it fails again: c.test is still down), not 30 s later.
    let started = Instant::now();
    let sent_again = wait_until(Duration::from_secs(15), || async { failures_metric().await >= 2.0 }).await;
    assert!(sent_again, "the retry sent at once");
    assert!(started.elapsed() < Duration::from_secs(15));
    let shown = c_test().await;
    assert_eq!(
        (shown["failures"].as_i64(), shown["queue_depth"].as_i64()),
        (Some(1), Some(1))
    );

    let (status, body) = api.call(admin::RETRY_DESTINATION, &["d.test"], None).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = api.call(admin::RETRY_DESTINATION, &["not a server"], None).await;
    assert_eq!((status, error_code(&body)), (400, "invalid_param"));
}

#[tokio::test]
async fn a_policy_edit_reaches_every_process_within_seconds() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = TestServer::spawn_federating_as("a.test", a_dir.path(), &[]).await;
    let a_peer = vec![(ServerName::parse("a.test").unwrap(), a.federation_addr.unwrap())];
    let mut config = parley_tests::server::federating_config(
        "b.test",
        b_dir.path(),
        (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        a_peer,
        |_| {},
    )
    .await;
    enable_admin(&mut config, b_dir.path());
    let b1 = TestServer::start(config.clone()).await;
    // A second process of b.test on the same database, without an admin listener.
    let mut second = b1.config.clone();
    second.listen.client = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    if let Some(federation) = second.federation.as_mut() {
        federation.listen = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    }
    second.admin = None;
    let b2 = TestServer::start(second).await;
    let api = AdminApi::of(&b1);
    for b in [&b1, &b2] {
        assert_eq!(version_from(a_dir.path(), "a.test", b).await.0, 200);
    }
    let shown = api.ok(admin::GET_POLICY, &[], None).await;
    assert_eq!(shown["source"], "config_file");
    assert_eq!((&shown["allow"], &shown["deny"]), (&json!(null), &json!([])));
    assert_eq!(shown["federation_enabled"], true);

    let set = api
        .ok(admin::SET_POLICY, &[], Some(json!({"allow": null, "deny": ["a.test"]})))
        .await;
    assert_eq!((&set["source"], &set["deny"]), (&json!("database"), &json!(["a.test"])));
    assert_eq!(set["config_file"]["deny"], json!([]));
    // The process that stored it applies it at once; the other within about two seconds.
    assert_eq!(
        version_from(a_dir.path(), "a.test", &b1).await,
        (403, "server_not_allowed".to_owned())
    );
    let started = Instant::now();
    let refused = wait_until(Duration::from_secs(5), || async {
        version_from(a_dir.path(), "a.test", &b2).await == (403, "server_not_allowed".to_owned())
    })
    .await;
    assert!(refused, "the other process applied the deny list");
    assert!(started.elapsed() < Duration::from_secs(5));
    let shown = api.ok(admin::GET_POLICY, &[], None).await;
    assert_eq!(
        (&shown["source"], &shown["deny"]),
        (&json!("database"), &json!(["a.test"]))
    );

    // An allow list without a.test refuses it too; one with it admits it.
    api.ok(admin::SET_POLICY, &[], Some(json!({"allow": ["c.test"]}))).await;
    assert_eq!(version_from(a_dir.path(), "a.test", &b1).await.0, 403);
    api.ok(admin::SET_POLICY, &[], Some(json!({"allow": ["a.test"], "deny": []})))
        .await;
    assert_eq!(version_from(a_dir.path(), "a.test", &b1).await.0, 200);

    let (status, body) = api
        .call(admin::SET_POLICY, &[], Some(json!({"deny": ["not a server"]})))
        .await;
    assert_eq!((status, error_code(&body)), (400, "bad_json"));

    api.ok(admin::SET_POLICY, &[], Some(json!({"deny": ["a.test"]}))).await;
    let reset = api.ok(admin::RESET_POLICY, &[], None).await;
    assert_eq!((&reset["source"], &reset["deny"]), (&json!("config_file"), &json!([])));
    let admitted = wait_until(Duration::from_secs(5), || async {
        version_from(a_dir.path(), "a.test", &b2).await.0 == 200
    })
    .await;
    assert!(admitted, "back to the configuration file's lists everywhere");
}

/// Random and hostile input on every admin endpoint: a JSON error, never a 5xx.
#[tokio::test]
async fn no_admin_input_causes_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let api = AdminApi::of(&server);
    registered(&server, "ivan").await;
    let bodies = [
        json!(null),
        json!([]),
        json!({"password": 1}),
        json!({"password": "\u{0}".repeat(2000)}),
        json!({"allow": "x", "deny": null}),
        json!({"allow": [1]}),
    ];
    for endpoint in admin::ALL {
        for params in [
            ["ivan", "ABC"],
            ["%00", "%2F.."],
            ["ivan@test.parley", &"x".repeat(300)],
        ] {
            for body in &bodies {
                let (status, error) = api.call(*endpoint, &params, Some(body.clone())).await;
                assert!(status < 500, "{} {params:?}: {status} {error}", endpoint.path);
                if status >= 400 {
                    assert!(
                        !error_code(&error).is_empty(),
                        "{} {status}: no JSON error",
                        endpoint.path
                    );
                }
            }
        }
    }
    for query in [
        "limit=abc",
        "limit=-1",
        "nope=1",
        &format!("search={}", "a".repeat(100)),
    ] {
        let (status, body) = api
            .send_as(Some(&api.token), Method::Get, &format!("/admin/v1/users?{query}"), None)
            .await;
        assert_eq!((status, error_code(&body)), (400, "invalid_param"), "{query}");
    }
    // Nothing above changed the account.
    server
        .sdk()
        .login(&login_request("ivan", PASSWORD))
        .await
        .expect("still logs in");
}

/// Runs `parley-homeserver admin <args>`; returns success, stdout and stderr.
async fn cli(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(parley_tests::process::binary())
        .arg("admin")
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run parley-homeserver admin");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_admin_cli_drives_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = admin_server(dir.path()).await;
    let config_file = dir.path().join("homeserver.toml");
    std::fs::write(&config_file, toml::to_string(&server.config).unwrap()).unwrap();
    let config = config_file.to_str().unwrap();
    let (judy, judy_session) = registered(&server, "judy").await;

    let (ok, out, err) = cli(&["--config", config, "users", "list"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("USER") && out.contains("judy@test.parley") && out.contains("active"),
        "{out}"
    );

    let (ok, out, err) = cli(&["--config", config, "--json", "stats"]).await;
    assert!(ok, "{err}");
    let stats: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!((stats["users"].as_i64(), stats["devices"].as_i64()), (Some(1), Some(1)));

    let (ok, out, err) = cli(&["--config", config, "devices", "list", "judy"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(judy_session.device_id.as_str()), "{out}");

    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "the operator's choice\n").unwrap();
    let (ok, out, err) = cli(&[
        "--config",
        config,
        "users",
        "reset-password",
        "judy",
        "--password-file",
        password_file.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("1 session(s) revoked"), "{out}");
    assert_eq!(code(judy.whoami().await), ErrorCode::UnknownToken);
    server
        .sdk()
        .login(&login_request("judy", "the operator's choice"))
        .await
        .expect("the password from the file works");

    let (ok, _, err) = cli(&["--config", config, "federation", "policy", "deny", "add", "x.test"]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&["--config", config, "--json", "federation", "policy", "show"]).await;
    assert!(ok, "{err}");
    let policy: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&policy["deny"], &policy["source"]),
        (&json!(["x.test"]), &json!("database"))
    );
    let (ok, out, err) = cli(&["--config", config, "federation", "policy", "show"]).await;
    assert!(ok && out.contains("deny:   x.test"), "{out}{err}");

    let (ok, out, err) = cli(&["--config", config, "users", "deactivate", "judy"]).await;
    assert!(ok && out.contains("deactivated judy@test.parley"), "{out}{err}");
    assert_eq!(
        code(
            server
                .sdk()
                .login(&login_request("judy", "the operator's choice"))
                .await
        ),
        ErrorCode::AccountDeactivated
    );

    // Clear failures: unknown user, wrong token, nobody listening.
    let (ok, _, err) = cli(&["--config", config, "users", "show", "nobody"]).await;
    assert!(!ok && err.contains("not_found"), "{err}");
    let wrong = dir.path().join("wrong.token");
    parley_homeserver::admin::token::create_if_missing(&wrong).unwrap();
    let (ok, _, err) = cli(&["--config", config, "--token-file", wrong.to_str().unwrap(), "stats"]).await;
    assert!(!ok && err.contains("refused the token"), "{err}");
    let closed = format!("http://{}", free_loopback_addr());
    let (ok, _, err) = cli(&["--config", config, "--url", &closed, "stats"]).await;
    assert!(!ok && err.contains("cannot reach the admin API"), "{err}");
    let (ok, _, err) = cli(&["stats"]).await;
    assert!(!ok && err.contains("--config"), "{err}");
    let (ok, out, _) = cli(&["--help"]).await;
    assert!(ok && out.contains("users") && out.contains("federation"), "{out}");
}
