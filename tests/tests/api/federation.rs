//! The federation listener: mutual TLS on its own port, and the server's key document.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use parley_federation::ServerKeyring;
use parley_federation::client::{FederationClient, MAX_KEY_DOCUMENT_BYTES};
use parley_federation::discovery::Reach;
use parley_federation::key_document::KeyDocument;
use parley_federation::request_auth::{RequestParts, authorization};
use parley_homeserver::devcerts::{DevCa, IssuedCert};
use parley_homeserver::remote::now_ms;
use parley_specs::endpoints::federation::{CLAIM_KEY_PACKAGES, SERVER_KEYS, VERSION};
use parley_specs::endpoints::ops::WELL_KNOWN_SERVER;
use parley_specs::federation_api::FederationVersion;
use parley_specs::keys_api::ClaimKeyPackagesRequest;
use parley_specs::{ErrorCode, ServerName, UserId};
use parley_tests::TestServer;
use parley_tests::fake_peer::{Framing, HugeAnswerPeer};
use parley_tests::mls::key_package_from;
use parley_tests::server::{
    ca_file, federating_config, free_loopback_addr, https_client, https_client_trusting, issue_cert,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::helpers::{
    code, identity_in, keyring_in, registered, upload_key_packages, version_from, version_request_signed,
};

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
    keyring.rotate(rotated_at, false);
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

/// A stolen key: after `keys rotate --overlap-secs 0`, a peer that had cached the old key
/// document used to accept requests signed with the old key until that document expired
/// (a week by default). Now the old key is published as revoked, the server tells the
/// servers it knows that its key changed, and they stop accepting the stolen key within
/// seconds.
#[tokio::test]
async fn a_key_revoked_after_a_compromise_stops_verifying_at_peers_within_seconds() {
    let pair = pair().await;
    let identity = pair.a_identity();
    let stolen = pair.a_keyring();
    let (status, _) = pair
        .call_b(&identity, Some(pair.a_signs(&stolen, "b.test", now_ms())))
        .await;
    assert_eq!(status, 200, "b fetched and cached a's keys");

    // What `parley-homeserver keys rotate --overlap-secs 0` does to the key file.
    let mut keyring = pair.a_keyring();
    keyring.rotate(now_ms(), true);
    keyring.save(&pair.a_dir.join("server.key")).unwrap();

    let refused = parley_tests::wait_until(Duration::from_secs(30), || async {
        let (status, _) = pair
            .call_b(&identity, Some(pair.a_signs(&stolen, "b.test", now_ms())))
            .await;
        status == 401
    })
    .await;
    assert!(refused, "b still accepts requests signed with a's revoked key");
    // A request signed with a's new key is accepted.
    let (status, _) = pair
        .call_b(&identity, Some(pair.a_signs(&keyring, "b.test", now_ms())))
        .await;
    assert_eq!(status, 200);
}

/// Two federating servers, `a.test` and `b.test`; `b` reaches `a` to fetch its keys.
struct Pair {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a_dir: std::path::PathBuf,
    a: TestServer,
    b: TestServer,
}

async fn pair() -> Pair {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Each reaches the other, so both addresses are chosen before either starts.
    let (a_addr, b_addr) = (free_loopback_addr(), free_loopback_addr());
    // c.test is a server that is down: a loopback port nobody listens on.
    let down = (name("c.test"), free_loopback_addr());
    let a = TestServer::spawn_federating_with(
        "a.test",
        a_dir.path(),
        a_addr,
        vec![(name("b.test"), b_addr), down],
        |_| {},
    )
    .await;
    let b =
        TestServer::spawn_federating_with("b.test", b_dir.path(), b_addr, vec![(name("a.test"), a_addr)], |_| {}).await;
    Pair {
        a_dir: a_dir.path().to_owned(),
        _dirs: (a_dir, b_dir),
        a,
        b,
    }
}

impl Pair {
    fn a_keyring(&self) -> ServerKeyring {
        keyring_in(&self.a_dir)
    }

    fn a_identity(&self) -> IssuedCert {
        identity_in(&self.a_dir)
    }

    /// A request to `b`'s version endpoint with this authorization, over a connection
    /// presenting `identity`.
    async fn call_b(&self, identity: &IssuedCert, authorization: Option<String>) -> (u16, serde_json::Value) {
        let mut request = https_client(Some(identity)).get(self.b.federation_url(VERSION.path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// `a`'s signature on a GET of `b`'s version endpoint.
    fn a_signs(&self, keyring: &ServerKeyring, destination: &str, ts: i64) -> String {
        version_request_signed(keyring, self.a.server_name(), &name(destination), ts)
    }
}

fn name(s: &str) -> ServerName {
    ServerName::parse(s).unwrap()
}

#[tokio::test]
async fn a_signed_request_from_a_peer_is_authenticated_as_its_origin() {
    let pair = pair().await;
    let identity = pair.a_identity();
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
    let roots = parley_homeserver::tls::root_store(Some(&ca_file())).unwrap();
    let peers = [(name("b.test"), pair.b.federation_addr.unwrap())]
        .into_iter()
        .collect();
    let client = FederationClient::new(name("a.test"), (chain, key), roots, peers, Reach::PublicOnly).unwrap();

    let response = client
        .send(
            &pair.a_keyring(),
            reqwest::Method::GET,
            &name("b.test"),
            VERSION.path,
            Vec::new(),
            now_ms(),
        )
        .await
        .expect("b answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "federation speaks HTTP/2");
    let version: FederationVersion = response.json().await.unwrap();
    assert_eq!(version.server_name, name("b.test"));
    assert_eq!(version.origin, name("a.test"));

    // The client fetches and verifies keys the same way the servers do.
    let keys = client.fetch_keys(&name("b.test"), now_ms()).await.unwrap();
    assert_eq!(keys.server_name, name("b.test"));
}

#[tokio::test]
async fn forged_missing_stale_replayed_misaddressed_or_misattributed_requests_are_refused() {
    let pair = pair().await;
    let a = pair.a_identity();
    let keyring = pair.a_keyring();
    let refused = |(status, body): (u16, serde_json::Value), want_status: u16, want_code: &str| {
        assert_eq!(
            (status, body["error"].as_str().unwrap_or_default()),
            (want_status, want_code),
            "{body}"
        );
    };

    refused(pair.call_b(&a, None).await, 401, "missing_signature");

    let forger = ServerKeyring::generate();
    refused(
        pair.call_b(&a, Some(pair.a_signs(&forger, "b.test", now_ms()))).await,
        401,
        "invalid_signature",
    );
    let far_future = now_ms() + 6 * 60 * 1000;
    refused(
        pair.call_b(&a, Some(pair.a_signs(&keyring, "b.test", far_future)))
            .await,
        401,
        "stale_request",
    );
    let stale = now_ms() - 6 * 60 * 1000;
    refused(
        pair.call_b(&a, Some(pair.a_signs(&keyring, "b.test", stale))).await,
        401,
        "stale_request",
    );
    refused(
        pair.call_b(&a, Some(pair.a_signs(&keyring, "c.test", now_ms()))).await,
        421,
        "wrong_destination",
    );

    // A valid signature by a.test over a connection whose certificate names c.test.
    let c = issue_cert(&["c.test"]);
    refused(
        pair.call_b(&c, Some(pair.a_signs(&keyring, "b.test", now_ms()))).await,
        403,
        "certificate_mismatch",
    );

    let once = pair.a_signs(&keyring, "b.test", now_ms());
    let (status, body) = pair.call_b(&a, Some(once.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["origin"], "a.test");
    refused(pair.call_b(&a, Some(once)).await, 401, "replayed_request");

    let metrics = pair.b.metrics().await;
    for outcome in [
        "authenticated",
        "missing_signature",
        "stale_request",
        "replayed_request",
        "certificate_mismatch",
    ] {
        assert!(
            metrics.contains(&format!("parley_federation_requests_total{{outcome=\"{outcome}\"}}")),
            "{outcome} is counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn denied_or_unlisted_origins_are_refused_before_any_work() {
    let (a_dir, b_dir, c_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = TestServer::spawn_federating_as("a.test", a_dir.path(), &[]).await;
    let a_peer = vec![(name("a.test"), a.federation_addr.unwrap())];
    let any_port = std::net::Ipv4Addr::LOCALHOST;
    let denying =
        TestServer::spawn_federating_with("b.test", b_dir.path(), (any_port, 0).into(), a_peer.clone(), |f| {
            f.deny.insert(name("a.test"));
        })
        .await;
    let allowing_others =
        TestServer::spawn_federating_with("c.test", c_dir.path(), (any_port, 0).into(), a_peer, |f| {
            f.allow = Some([name("b.test")].into_iter().collect());
        })
        .await;
    for server in [&denying, &allowing_others] {
        assert_eq!(
            version_from(a_dir.path(), "a.test", server).await,
            (403, "server_not_allowed".to_owned())
        );
        let remembered = server.count("SELECT count(*) FROM federation_seen_requests", &[]).await;
        assert_eq!(remembered, 0, "a refused origin leaves nothing behind");
    }
}

#[tokio::test]
async fn a_user_of_another_server_is_claimed_over_federation() {
    let pair = pair().await;
    let (bob, bob_session) = registered(&pair.b, "bob").await;
    upload_key_packages(&bob, &bob_session, 2).await;

    // `b` needs `a`'s keys to authenticate the claim; `a` needs `b`'s address.
    let (alice, _) = registered(&pair.a, "alice").await;
    let claimed = alice
        .claim_key_packages(&ClaimKeyPackagesRequest {
            user_id: bob_session.user_id.clone(),
        })
        .await
        .expect("claimed over federation");
    assert_eq!(claimed.user_id, bob_session.user_id);
    assert_eq!(claimed.key_packages.len(), 1);
    assert_eq!(claimed.key_packages[0].device_id, bob_session.device_id);
    key_package_from(claimed.key_packages[0].key_package.as_slice());
    assert_eq!(
        bob.key_package_count().await.unwrap().available,
        1,
        "consumed on bob's server"
    );

    let nobody = UserId::parse("nobody@b.test").unwrap();
    let missing = alice
        .claim_key_packages(&ClaimKeyPackagesRequest { user_id: nobody })
        .await;
    assert_eq!(code(missing), ErrorCode::NotFound);
    let unknown_server = UserId::parse("carol@c.test").unwrap();
    let unreachable = alice
        .claim_key_packages(&ClaimKeyPackagesRequest {
            user_id: unknown_server,
        })
        .await;
    assert_eq!(code(unreachable), ErrorCode::RemoteUnavailable);
}

#[tokio::test]
async fn a_server_that_is_not_a_configured_peer_is_found_through_its_well_known_document() {
    let (x_dir, y_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (x_client, x_fed, y_fed) = (free_loopback_addr(), free_loopback_addr(), free_loopback_addr());
    // x is named after the address of its client listener, which serves the delegation to
    // its federation port; y knows nothing about x but its name.
    let x_name = format!("localhost:{}", x_client.port());
    let mut x_config = federating_config(&x_name, x_dir.path(), x_fed, vec![(name("a.test"), y_fed)], |f| {
        f.well_known_server = Some(format!("localhost:{}", x_fed.port()));
    })
    .await;
    x_config.listen.client = x_client;
    let x = TestServer::start(x_config).await;
    // x is found by a name on loopback: y must be told it may reach private addresses.
    let y = TestServer::spawn_federating_with("a.test", y_dir.path(), y_fed, vec![], |f| {
        f.reach_private_addresses = true;
    })
    .await;
    let delegation: serde_json::Value = x
        .http()
        .get(x.endpoint_url(WELL_KNOWN_SERVER.path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(delegation["server"], format!("localhost:{}", x_fed.port()));
    let undelegated = y
        .http()
        .get(y.endpoint_url(WELL_KNOWN_SERVER.path))
        .send()
        .await
        .unwrap();
    assert_eq!(undelegated.status(), 404);

    let (bob, bob_session) = registered(&x, "bob").await;
    upload_key_packages(&bob, &bob_session, 1).await;
    let (alice, _) = registered(&y, "alice").await;
    let claimed = alice
        .claim_key_packages(&ClaimKeyPackagesRequest {
            user_id: bob_session.user_id.clone(),
        })
        .await
        .expect("claimed from a server found through discovery");
    assert_eq!(claimed.key_packages.len(), 1);
}

/// A user may name any server, but the homeserver reaches servers that are not configured
/// peers only at public addresses: naming `probe@127.0.0.1:PORT` or `probe@localhost:PORT`
/// dials nothing (it used to, and told a closed port from HTTP from TLS, echoing what
/// answered), and the error says only that this server does not federate with it.
#[tokio::test]
async fn users_of_private_addresses_are_refused_without_dialling_them() {
    let pair = pair().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dialled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = dialled.clone();
    let probe = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nPROBED-SECRET")
                .await;
        }
    });
    let (alice, _) = registered(&pair.a, "alice").await;
    // An IP address is refused by its name; a DNS name when it resolves to no public
    // address, so it is unreachable like a name that resolves to nothing.
    for (user, expected) in [
        (format!("probe@127.0.0.1:{port}"), ErrorCode::ServerNotAllowed),
        (format!("probe@localhost:{port}"), ErrorCode::RemoteUnavailable),
    ] {
        let refused = alice
            .claim_key_packages(&ClaimKeyPackagesRequest {
                user_id: UserId::parse(&user).unwrap(),
            })
            .await
            .expect_err("a private address is not reached");
        assert_eq!(refused.code(), Some(expected), "{user}: {refused}");
        assert!(!refused.to_string().contains("PROBED"), "{user}: {refused}");
    }
    probe.abort();
    assert_eq!(
        dialled.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was dialled"
    );
}

/// Each federation endpoint reads a body only up to its own limit, not the largest any
/// endpoint takes: a 2 MiB claim (whose body is a user id) is refused as too large before
/// it is parsed, although it is signed correctly; and a GET takes no body at all.
#[tokio::test]
async fn a_body_over_its_endpoints_limit_is_refused_before_it_is_parsed() {
    let pair = pair().await;
    let identity = pair.a_identity();
    let keyring = pair.a_keyring();
    let signed_call = |method: reqwest::Method, path: &'static str, body: Vec<u8>| {
        let parts = RequestParts {
            method: method.as_str(),
            path_and_query: path,
            body: &body,
        };
        let signature = authorization(&keyring, pair.a.server_name(), &name("b.test"), &parts, now_ms());
        https_client(Some(&identity))
            .request(method.clone(), pair.b.federation_url(path))
            .header("authorization", signature)
            .header("content-type", "application/json")
            .body(body)
    };
    let answer = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (status, body["error"].as_str().unwrap_or_default().to_owned())
    };

    let huge_claim = vec![b' '; 2 * 1024 * 1024];
    let response = signed_call(reqwest::Method::POST, CLAIM_KEY_PACKAGES.path, huge_claim)
        .send()
        .await
        .expect("b answers");
    assert_eq!(answer(response).await, (413, "payload_too_large".to_owned()));

    let get_with_body = signed_call(reqwest::Method::GET, VERSION.path, b"{}".to_vec())
        .send()
        .await
        .expect("b answers");
    assert_eq!(answer(get_with_body).await, (413, "payload_too_large".to_owned()));

    // The same endpoints still answer requests within their limits.
    let version = signed_call(reqwest::Method::GET, VERSION.path, Vec::new())
        .send()
        .await
        .expect("b answers");
    assert_eq!(version.status(), 200);
}

/// A peer answering far more than any answer needs (here 64 MiB; 512 MiB once grew a
/// homeserver to 1.2 GB) is not read past the call's limit: the claim fails with a short,
/// clear `remote_unavailable` that repeats none of the answer, and the peer cannot push
/// much more than the limit before the homeserver hangs up. Both with a declared length
/// (refused before reading) and without one (counted while reading).
#[tokio::test]
async fn a_peers_huge_answer_is_refused_at_its_limit_without_being_read() {
    const OFFERED: u64 = 64 * 1024 * 1024;
    for framing in [Framing::ContentLength, Framing::UntilClose] {
        let peer = HugeAnswerPeer::start("evil.test", OFFERED, framing).await;
        let dir = tempfile::tempdir().unwrap();
        let a = TestServer::spawn_federating_with(
            "a.test",
            dir.path(),
            (std::net::Ipv4Addr::LOCALHOST, 0).into(),
            vec![(name("evil.test"), peer.addr)],
            |_| {},
        )
        .await;
        let limit = a.config.federation.as_ref().unwrap().max_transaction_bytes;
        let (alice, _) = registered(&a, "alice").await;
        let refused = alice
            .claim_key_packages(&ClaimKeyPackagesRequest {
                user_id: UserId::parse("mallory@evil.test").unwrap(),
            })
            .await
            .expect_err("a huge answer is no claim");
        assert_eq!(
            refused.code(),
            Some(ErrorCode::RemoteUnavailable),
            "{framing:?}: {refused}"
        );
        let message = refused.to_string();
        assert!(
            message.contains(&format!("more than {limit} bytes")),
            "{framing:?}: {message}"
        );
        assert!(
            !message.contains("huge-answer") && message.len() < 300,
            "{framing:?}: the answer is not repeated: {message}"
        );
        assert_eq!(peer.requests(), 1);
        let pushed = peer.bytes_sent();
        assert!(
            pushed < OFFERED / 2,
            "{framing:?}: the peer pushed {pushed} bytes of a {limit}-byte limit"
        );
    }
}

/// A key document is small: a peer serving a huge one is refused at 64 KiB, with an error
/// that names the limit and repeats nothing of it.
#[tokio::test]
async fn a_huge_key_document_is_refused_at_its_limit() {
    let peer = HugeAnswerPeer::start("evil.test", 64 * 1024 * 1024, Framing::UntilClose).await;
    let identity = issue_cert(&["a.test"]);
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
    let roots = parley_homeserver::tls::root_store(Some(&ca_file())).unwrap();
    let peers = [(name("evil.test"), peer.addr)].into_iter().collect();
    let client = FederationClient::new(name("a.test"), (chain, key), roots, peers, Reach::PublicOnly).unwrap();
    let refused = client
        .fetch_keys(&name("evil.test"), now_ms())
        .await
        .expect_err("a huge key document");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("more than {MAX_KEY_DOCUMENT_BYTES} bytes")),
        "{message}"
    );
    assert!(!message.contains("huge-answer"), "{message}");
    assert!(peer.bytes_sent() < 32 * 1024 * 1024, "{}", peer.bytes_sent());
}
