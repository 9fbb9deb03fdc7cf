//! A homeserver process stopped with SIGTERM: requests in flight finish, inbox WebSockets
//! get a close frame, long-polls are answered, idle keep-alive connections (client API and
//! federation) are closed, and the process exits long before its grace period ends.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use parley_federation::client::FederationClient;
use parley_federation::discovery::Reach;
use parley_homeserver::remote::now_ms;
use parley_homeserver::shutdown::GRACE_PERIOD_SECS;
use parley_homeserver::tls::{certified_key, root_store};
use parley_specs::ServerName;
use parley_specs::endpoints::{client as client_endpoints, federation as federation_endpoints};
use parley_specs::groups_api::InboxQuery;
use parley_tests::process::ProcessServer;
use parley_tests::server::{ca_file, ca_pem, federating_config, free_loopback_addr, https_client, issue_cert};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::register_request;

fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Reads from `stream` until `needle` has arrived (or the stream ends); what was read.
async fn read_until(stream: &mut (impl tokio::io::AsyncRead + Unpin), needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn sigterm_finishes_what_is_in_flight_closes_the_rest_and_exits_before_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = federating_config("a.test", dir.path(), free_loopback_addr(), vec![], |_| {}).await;
    let mut server = ProcessServer::start(config, dir.path()).await;
    let session = server.sdk().register(&register_request("alice")).await.unwrap();
    let alice = server.sdk().with_access_token(&session.access_token);
    let port = server.config.listen.client.port();

    // A long-poll, waiting for an entry that never comes.
    let poller = alice.clone();
    let long_poll = tokio::spawn(async move {
        let answered = poller
            .read_inbox(&InboxQuery {
                after: None,
                limit: None,
                timeout_ms: Some(30_000),
            })
            .await;
        (answered, Instant::now())
    });

    // An inbox WebSocket.
    let mut request = format!("wss://localhost:{port}{}?after=0", client_endpoints::INBOX_STREAM.path)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", session.access_token)).unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(client_tls())),
    )
    .await
    .expect("inbox WebSocket");

    // Idle keep-alive federation connections from a peer: HTTP/2 (the federation client)
    // and HTTP/1.1.
    let peer_dir = tempfile::tempdir().unwrap();
    let peer_cert = issue_cert(&["b.test"]);
    let (cert, key) = (peer_dir.path().join("tls.pem"), peer_dir.path().join("tls.key"));
    std::fs::write(&cert, &peer_cert.cert_pem).unwrap();
    std::fs::write(&key, &peer_cert.key_pem).unwrap();
    let a_test = ServerName::parse("a.test").unwrap();
    let peer = FederationClient::new(
        ServerName::parse("b.test").unwrap(),
        certified_key(&cert, &key).unwrap(),
        root_store(Some(&ca_file())).unwrap(),
        [(a_test.clone(), server.federation_addr().unwrap())]
            .into_iter()
            .collect(),
        Reach::PublicOnly,
    )
    .unwrap();
    peer.fetch_keys(&a_test, now_ms())
        .await
        .expect("the peer fetches a.test's keys");
    let federation_url = format!(
        "https://localhost:{}{}",
        server.federation_addr().unwrap().port(),
        federation_endpoints::SERVER_KEYS.path
    );
    let http1_peer = https_client(Some(&peer_cert));
    let answered = http1_peer.get(&federation_url).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    answered.bytes().await.unwrap();

    // A request in flight: its headers are in (the server said "100 Continue"), its body
    // comes after the SIGTERM.
    let tcp = tokio::net::TcpStream::connect(server.config.listen.client)
        .await
        .unwrap();
    let mut in_flight = tokio_rustls::TlsConnector::from(client_tls())
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let body = r#"{"up_to": 0}"#;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        client_endpoints::ACK_INBOX.path,
        session.access_token,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    let continued = read_until(&mut in_flight, "\r\n\r\n").await;
    assert!(continued.starts_with("HTTP/1.1 100 Continue"), "{continued}");

    let sent = Instant::now();
    server.signal("TERM");
    // The request in flight completes, and the connection closes after it.
    in_flight.write_all(body.as_bytes()).await.unwrap();
    let answer = read_until(&mut in_flight, "\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 204") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    // The WebSocket gets a close frame saying the server is going away.
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame");
    let close = close.expect("the close frame says why");
    assert_eq!(close.code, CloseCode::Away, "{close:?}");
    // The long-poll is answered (with nothing), not cut off.
    let (answered, at) = long_poll.await.unwrap();
    let page = answered.expect("the long-poll is answered");
    assert!(page.entries.is_empty());
    let long_poll_answered_after = at.duration_since(sent);

    // Nothing else holds the process: it exits before the grace period is over.
    let grace = Duration::from_secs(GRACE_PERIOD_SECS);
    let status = server
        .wait_for_exit(grace / 2)
        .await
        .unwrap_or_else(|| panic!("still running {:?} after SIGTERM (grace period {grace:?})", grace / 2));
    let stopped_after = sent.elapsed();
    assert!(status.success(), "{status}");
    println!(
        "SIGTERM -> long-poll answered in {long_poll_answered_after:?}, process exited in {stopped_after:?} \
         (grace period {grace:?}; open: 1 WebSocket, idle HTTP/2 and HTTP/1.1 federation connections, \
         idle client connections, 1 request in flight)"
    );
    // The idle connections were closed by the server.
    assert!(matches!(
        socket.next().await,
        None | Some(Err(_)) | Some(Ok(Message::Close(_)))
    ));
}
