//! What a homeserver keeps across a restart.

use parley_tests::TestServer;

use crate::helpers::{PASSWORD, login_request, registered};

#[tokio::test]
async fn accounts_and_tokens_survive_a_restart() {
    let server = TestServer::spawn().await;
    let (client, session) = registered(&server, "sam").await;
    let config = server.stop().await;
    assert!(client.whoami().await.is_err(), "the server is down");

    let server = TestServer::start(config).await;
    // The old device's token still works against the new process on the same port.
    assert_eq!(
        client.whoami().await.expect("whoami after restart").device_id,
        session.device_id
    );
    server
        .sdk()
        .login(&login_request("sam", PASSWORD))
        .await
        .expect("login after restart");
    assert_eq!(client.devices().await.expect("devices").devices.len(), 2);
}

#[tokio::test]
async fn a_database_from_a_newer_release_is_refused() {
    let server = TestServer::spawn().await;
    server
        .db()
        .await
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')",
            &[],
        )
        .await
        .expect("insert");
    let config = server.stop().await;
    let error = match parley_homeserver::Application::build(config).await {
        Ok(_) => panic!("a homeserver started on a schema newer than it knows"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("version 999") && error.contains("newer than this binary"),
        "{error}"
    );
}
