//! The account and device lifecycle through the SDK.

use parley_specs::ErrorCode;
use parley_specs::client_api::ChangePasswordRequest;
use parley_tests::TestServer;

use crate::helpers::{PASSWORD, code, logged_in, login_request, registered};

#[tokio::test]
async fn full_account_lifecycle() {
    let server = TestServer::spawn().await;
    let (laptop, first) = registered(&server, "alice").await;
    assert_eq!(first.user_id.as_str(), "alice@test.parley");
    assert!(first.access_token.starts_with("pat_"));

    let me = laptop.whoami().await.expect("whoami");
    assert_eq!(
        (me.user_id.clone(), me.device_id.clone()),
        (first.user_id.clone(), first.device_id.clone())
    );

    // A second device, logging in with the full user id.
    let (phone, second) = logged_in(&server, "alice@test.parley").await;
    assert_ne!(second.device_id, first.device_id);
    assert_eq!(phone.whoami().await.expect("whoami").device_id, second.device_id);

    let devices = laptop.devices().await.expect("devices").devices;
    assert_eq!(devices.len(), 2);
    let current: Vec<_> = devices
        .iter()
        .filter(|d| d.current)
        .map(|d| d.device_id.clone())
        .collect();
    assert_eq!(current, vec![first.device_id.clone()]);
    assert_eq!(devices[0].display_name, "laptop");
    assert_eq!(devices[1].display_name, "phone");

    let renamed = laptop
        .rename_device(&second.device_id, "work phone")
        .await
        .expect("rename");
    assert_eq!(renamed.display_name, "work phone");
    assert!(!renamed.current);

    // Deleting the phone revokes its token.
    laptop.delete_device(&second.device_id).await.expect("delete");
    assert_eq!(code(phone.whoami().await), ErrorCode::UnknownToken);
    assert_eq!(laptop.devices().await.expect("devices").devices.len(), 1);

    // Logout revokes this device's token.
    laptop.logout().await.expect("logout");
    assert_eq!(code(laptop.whoami().await), ErrorCode::UnknownToken);

    // The account remains: log in again.
    let (again, _) = logged_in(&server, "alice").await;
    assert_eq!(again.whoami().await.expect("whoami").user_id, first.user_id);
}

#[tokio::test]
async fn logout_all_revokes_every_device() {
    let server = TestServer::spawn().await;
    let (a, _) = registered(&server, "bob").await;
    let (b, _) = logged_in(&server, "bob").await;
    let (c, _) = logged_in(&server, "bob").await;
    b.logout_all().await.expect("logout all");
    for client in [&a, &b, &c] {
        assert_eq!(code(client.whoami().await), ErrorCode::UnknownToken);
    }
    let rows = server
        .db()
        .await
        .query("SELECT 1 FROM devices", &[])
        .await
        .expect("query");
    assert!(rows.is_empty());
}

#[tokio::test]
async fn changing_the_password_revokes_other_devices() {
    let server = TestServer::spawn().await;
    let (laptop, _) = registered(&server, "carol").await;
    let (phone, _) = logged_in(&server, "carol").await;

    let wrong = ChangePasswordRequest {
        current_password: "not the password".into(),
        new_password: "a brand new password".into(),
    };
    assert_eq!(
        code(laptop.change_password(&wrong).await),
        ErrorCode::InvalidCredentials
    );
    assert!(phone.whoami().await.is_ok(), "a failed change revokes nothing");

    let weak = ChangePasswordRequest {
        current_password: PASSWORD.into(),
        new_password: "short".into(),
    };
    assert_eq!(code(laptop.change_password(&weak).await), ErrorCode::WeakPassword);

    let change = ChangePasswordRequest {
        current_password: PASSWORD.into(),
        new_password: "a brand new password".into(),
    };
    laptop.change_password(&change).await.expect("change password");
    assert!(laptop.whoami().await.is_ok(), "the changing device stays logged in");
    assert_eq!(code(phone.whoami().await), ErrorCode::UnknownToken);

    let old = server.sdk().login(&login_request("carol", PASSWORD)).await;
    assert_eq!(code(old), ErrorCode::InvalidCredentials);
    server
        .sdk()
        .login(&login_request("carol", "a brand new password"))
        .await
        .expect("new password works");
}

#[tokio::test]
async fn secrets_are_stored_hashed() {
    let server = TestServer::spawn().await;
    let (_, session) = registered(&server, "dave").await;
    let db = server.db().await;
    let hash: String = db
        .query_one("SELECT password_hash FROM accounts", &[])
        .await
        .expect("row")
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    let token_hash: Vec<u8> = db
        .query_one("SELECT token_hash FROM devices", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(token_hash.len(), 32);
    let dump: String = db
        .query_one("SELECT string_agg(d::text, ' ') FROM (SELECT * FROM devices) d", &[])
        .await
        .expect("row")
        .get(0);
    assert!(
        !dump.contains(&session.access_token),
        "the token itself is never stored"
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_have_one_winner() {
    let server = TestServer::spawn().await;
    let attempts = (0..8).map(|_| {
        let client = server.sdk();
        async move { client.register(&crate::helpers::register_request("eve")).await }
    });
    let results = futures_join_all(attempts).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for result in results.into_iter().filter(|r| r.is_err()) {
        assert_eq!(code(result), ErrorCode::UsernameTaken);
    }
    let count: i64 = server.count("SELECT count(*) FROM accounts", &[]).await;
    assert_eq!(count, 1);
}

async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}
