//! The federation listener: mutual TLS on its own port, and the server's key document.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use parley_federation::ServerKeyring;
use parley_federation::key_document::KeyDocument;
use parley_homeserver::devcerts::DevCa;
use parley_homeserver::federation::now_ms;
use parley_specs::endpoints::federation::SERVER_KEYS;
use parley_tests::TestServer;
use parley_tests::server::{https_client, https_client_trusting, issue_cert};

async fn fetch_keys(server: &TestServer, client: &reqwest::Client) -> KeyDocument {
    let response = client
        .get(server.federation_url(SERVER_KEYS.path))
        .send()
        .await
        .expect("GET keys");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a key document")
}

#[tokio::test]
async fn the_key_document_is_served_over_mutual_tls_and_verifies() {
    let key_dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_federating(key_dir.path()).await;
    let key_file = key_dir.path().join("server.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the signing key is created readable by its owner only"
    );
    let peer = https_client(Some(&issue_cert(&["peer.test"])));
    let document = fetch_keys(&server, &peer).await;
    let keys = document
        .verify(server.server_name(), now_ms())
        .expect("self-signed by its keys");
    let on_disk = ServerKeyring::load(&key_file).unwrap();
    assert_eq!(keys.key_for(on_disk.key_id(), now_ms()), Some(&on_disk.public_key()));
    assert!(keys.valid_until_ms <= now_ms() + 3_600_000);

    // Not the client API: its paths are unknown here, in the API's error format.
    let response = peer
        .get(server.federation_url("/client/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unrecognized_endpoint");
}

#[tokio::test]
async fn peers_without_a_trusted_client_certificate_are_refused_at_the_handshake() {
    let key_dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_federating(key_dir.path()).await;
    let url = server.federation_url(SERVER_KEYS.path);

    let anonymous = https_client(None);
    assert!(anonymous.get(&url).send().await.is_err(), "no client certificate");

    let stranger_ca = DevCa::generate("Somebody else's CA").unwrap();
    let stranger = stranger_ca.issue(&["peer.test"]).unwrap();
    // Trusts our server, but presents a certificate our server does not trust.
    let stranger_client = https_client_trusting(&std::fs::read_to_string(server.ca_file()).unwrap(), Some(&stranger));
    assert!(
        stranger_client.get(&url).send().await.is_err(),
        "untrusted client certificate"
    );

    // The client API stays open to devices without certificates.
    let health = anonymous.get(server.endpoint_url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_rotated_key_is_published_at_once_and_the_old_one_stays_verifiable() {
    let key_dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_federating(key_dir.path()).await;
    let key_file = key_dir.path().join("server.key");
    let peer = https_client(Some(&issue_cert(&["peer.test"])));
    let before = fetch_keys(&server, &peer).await;
    let old_id = before.verify_keys.keys().next().unwrap().clone();

    // What `parley-homeserver keys rotate` does to the key file.
    let mut keyring = ServerKeyring::load(&key_file).unwrap();
    let rotated_at = now_ms();
    keyring.rotate(rotated_at);
    keyring.save(&key_file).unwrap();

    let published = parley_tests::wait_until(Duration::from_secs(30), || async {
        let document = fetch_keys(&server, &peer).await;
        document.verify_keys.contains_key(keyring.key_id())
    })
    .await;
    assert!(published, "the running server signs with the new key");
    let keys = fetch_keys(&server, &peer)
        .await
        .verify(server.server_name(), now_ms())
        .unwrap();
    assert!(
        keys.key_for(&old_id, rotated_at - 1).is_some(),
        "what the old key signed before"
    );
    assert!(
        keys.key_for(&old_id, rotated_at + 1).is_none(),
        "nothing it signs after"
    );
}
