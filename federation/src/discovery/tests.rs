//! Discovery against real HTTPS servers on loopback: a private CA, a well-known server and
//! federation listeners on ports picked by the system.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use parley_specs::ServerName;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::*;
use crate::ServerKeyring;
use crate::client::{ClientError, FederationClient};

/// Every test finishes well within this, or fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const VERSION_PATH: &str = "/federation/v1/version";

async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test finishes in time")
}

struct Ca(CertifiedIssuer<'static, KeyPair>);

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "discovery test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A certificate for `names` only (no IP addresses), for TLS servers and clients.
    fn issue(&self, names: &[&str]) -> Identity {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.0.der().clone()).unwrap();
        roots
    }

    fn client(&self, peers: BTreeMap<ServerName, SocketAddr>) -> FederationClient {
        FederationClient::new(
            name("origin.test"),
            self.issue(&["origin.test"]),
            self.roots(),
            peers,
            Reach::Any,
        )
        .unwrap()
    }

    fn discovery(&self) -> Discovery {
        Discovery::new(BTreeMap::new(), self.roots(), Reach::Any).unwrap()
    }
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn delegate(server: impl fmt::Display) -> Self {
        Self::new(200, format!(r#"{{"server":"{server}"}}"#))
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a test server answers and saw.
struct Seen {
    reply: Mutex<Reply>,
    paths: Mutex<Vec<String>>,
    well_known_fetches: AtomicUsize,
}

/// An HTTPS server on loopback that answers every request with its current [`Reply`].
struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
    handle: ServerHandle,
}

impl Server {
    /// Serves `identity` on `ip`; with `client_roots`, requires a client certificate
    /// chaining to them (as a federation listener does).
    fn start(ip: Ipv4Addr, identity: Identity, client_roots: Option<rustls::RootCertStore>, reply: Reply) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_roots {
            Some(roots) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap(),
            ),
            None => builder.with_no_client_auth(),
        };
        let tls = builder.with_single_cert(identity.0, identity.1).unwrap();
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen {
            reply: Mutex::new(reply),
            paths: Mutex::new(Vec::new()),
            well_known_fetches: AtomicUsize::new(0),
        });
        let data = web::Data::from(Arc::clone(&seen));
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(answer)))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen_rustls_0_23(listener, tls)
            .unwrap()
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { addr, seen, handle }
    }

    /// A well-known server on 127.0.0.1 ("localhost"), no client certificate asked.
    fn well_known(ca: &Ca, reply: Reply) -> Self {
        Self::start(Ipv4Addr::LOCALHOST, ca.issue(&["localhost"]), None, reply)
    }

    /// The server name `localhost:<this server's port>`.
    fn name(&self) -> ServerName {
        name(&format!("localhost:{}", self.addr.port()))
    }

    fn set_reply(&self, reply: Reply) {
        *self.seen.reply.lock().unwrap() = reply;
    }

    fn fetches(&self) -> usize {
        self.seen.well_known_fetches.load(Ordering::SeqCst)
    }

    fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn answer(request: HttpRequest, seen: web::Data<Seen>) -> HttpResponse {
    if request.path() == WELL_KNOWN_PATH {
        seen.well_known_fetches.fetch_add(1, Ordering::SeqCst);
    }
    seen.paths.lock().unwrap().push(request.path().to_owned());
    let reply = seen.reply.lock().unwrap().clone();
    let mut response = HttpResponse::build(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in reply.headers {
        response.insert_header((name, value));
    }
    response.body(reply.body)
}

fn name(s: &str) -> ServerName {
    ServerName::parse(s).unwrap()
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get_version(client: &FederationClient, destination: &ServerName) -> Result<reqwest::Response, ClientError> {
    client
        .send(
            &ServerKeyring::generate(),
            reqwest::Method::GET,
            destination,
            VERSION_PATH,
            Vec::new(),
            0,
        )
        .await
}

fn fallback_reason(route: Route, name: &ServerName) -> String {
    match route {
        Route::Fallback { host, port, reason } => {
            assert_eq!((host.as_str(), Some(port)), (name.host(), name.port()));
            reason
        }
        other => panic!("expected a fallback, got {other:?}"),
    }
}

#[tokio::test]
async fn a_delegation_is_followed_once_and_requests_reach_the_delegated_listener() {
    bounded(async {
        let ca = Ca::new();
        let federation = Server::start(
            Ipv4Addr::LOCALHOST,
            ca.issue(&["localhost"]),
            Some(ca.roots()),
            Reply::new(200, "delegated listener"),
        );
        let well_known = Server::well_known(&ca, Reply::delegate(format!("localhost:{}", federation.addr.port())));
        let client = ca.client(BTreeMap::new());
        let server = well_known.name();

        let expected = Route::WellKnown {
            host: "localhost".to_owned(),
            port: federation.addr.port(),
        };
        assert_eq!(client.route(&server).await, expected);
        assert_eq!(client.route(&server).await, expected);
        assert_eq!(well_known.fetches(), 1, "the second look-up is answered from the cache");

        // The URL is https://localhost:<delegated port>: the certificate is verified for
        // "localhost", the host of the server name, and the listener has our certificate.
        let response = get_version(&client, &server).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "delegated listener");
        assert_eq!(federation.paths(), [VERSION_PATH]);
        assert_eq!(
            well_known.paths(),
            [WELL_KNOWN_PATH],
            "no request went to the well-known server"
        );
        assert_eq!(well_known.fetches(), 1);

        well_known.stop().await;
        federation.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_certificate_is_checked_against_the_server_name_not_the_delegated_host() {
    bounded(async {
        let ca = Ca::new();
        // The delegated host is 127.0.0.2, which neither certificate names and which
        // "localhost" does not resolve to: only the delegation leads there.
        let other_loopback = Ipv4Addr::new(127, 0, 0, 2);
        let good = Server::start(
            other_loopback,
            ca.issue(&["localhost"]),
            Some(ca.roots()),
            Reply::new(200, "good"),
        );
        let impostor = Server::start(
            other_loopback,
            ca.issue(&["other.test"]),
            Some(ca.roots()),
            Reply::new(200, "impostor"),
        );
        let to_good = Server::well_known(&ca, Reply::delegate(good.addr));
        let to_impostor = Server::well_known(&ca, Reply::delegate(impostor.addr));
        let client = ca.client(BTreeMap::new());

        assert_eq!(
            client.route(&to_good.name()).await,
            Route::WellKnown {
                host: "127.0.0.2".to_owned(),
                port: good.addr.port()
            }
        );
        let response = get_version(&client, &to_good.name()).await.unwrap();
        assert_eq!(response.text().await.unwrap(), "good");

        let err = get_version(&client, &to_impostor.name()).await.unwrap_err();
        let ClientError::Unreachable { destination, reason } = &err else {
            panic!("expected a TLS failure, got {err}");
        };
        assert_eq!(destination, to_impostor.name().as_str());
        assert!(reason.contains("certificate"), "{reason}");
        assert!(
            reason.contains(&format!(
                "127.0.0.2:{} (from its well-known document)",
                impostor.addr.port()
            )),
            "{reason}"
        );
        assert!(impostor.paths().is_empty());

        for server in [good, impostor, to_good, to_impostor] {
            server.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_404_falls_back_to_the_server_name_and_requests_go_there() {
    bounded(async {
        let ca = Ca::new();
        let server = Server::well_known(&ca, Reply::new(404, "no such document"));
        let client = ca.client(BTreeMap::new());

        let reason = fallback_reason(client.route(&server.name()).await, &server.name());
        assert!(reason.contains("404"), "{reason}");
        assert!(reason.contains(&well_known_url(&server.name())), "{reason}");

        // The fallback is the name itself: the same server gets the federation request.
        let response = get_version(&client, &server.name()).await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(server.paths(), [WELL_KNOWN_PATH, VERSION_PATH]);
        assert_eq!(server.fetches(), 1, "the failure is cached");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unusable_documents_fall_back() {
    bounded(async {
        let ca = Ca::new();
        let server = Server::well_known(&ca, Reply::new(200, ""));
        let cases = [
            (Reply::new(200, "not json"), "is not a well-known document"),
            (Reply::new(200, r#"{"server": 8448}"#), "is not a well-known document"),
            (
                Reply::new(200, r#"{"host": "a.example"}"#),
                "is not a well-known document",
            ),
            (Reply::delegate("bad host!"), "not a DNS name"),
            (Reply::delegate("a.example:0"), "not a DNS name"),
            (Reply::delegate("a.example:99999"), "not a DNS name"),
            (Reply::new(500, "{}"), "500"),
            (
                Reply::new(302, "").header("location", "/elsewhere"),
                "redirect (not followed)",
            ),
            (
                Reply::new(
                    200,
                    format!(r#"{{"server":"a.example","pad":"{}"}}"#, "x".repeat(70_000)),
                ),
                "larger than 65536 bytes",
            ),
        ];
        for (reply, expected) in cases {
            server.set_reply(reply);
            let reason = fallback_reason(ca.discovery().route(&server.name()).await, &server.name());
            assert!(reason.contains(expected), "{reason} should say {expected}");
        }
        assert!(
            !server.paths().iter().any(|p| p == "/elsewhere"),
            "the redirect was followed"
        );
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_server_falls_back() {
    bounded(async {
        let ca = Ca::new();
        let client = ca.client(BTreeMap::new());
        let server = name(&format!("localhost:{}", closed_port()));

        let reason = fallback_reason(client.route(&server).await, &server);
        assert!(reason.contains(&format!("GET {}", well_known_url(&server))), "{reason}");
        assert!(reason.to_lowercase().contains("connect"), "{reason}");

        // A request says where it went and why there.
        let err = get_version(&client, &server).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("no well-known delegation"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn failures_are_retried_after_five_minutes_and_delegations_after_an_hour() {
    bounded(async {
        let ca = Ca::new();
        let server = Server::well_known(&ca, Reply::new(404, ""));
        let discovery = ca.discovery();
        let name = server.name();
        let start = Instant::now();

        assert!(matches!(discovery.route_at(&name, start).await, Route::Fallback { .. }));
        server.set_reply(Reply::delegate("fed.example:443"));
        let almost = start + FAILURE_TTL - Duration::from_secs(1);
        assert!(matches!(
            discovery.route_at(&name, almost).await,
            Route::Fallback { .. }
        ));
        assert_eq!(server.fetches(), 1);

        let retry = start + FAILURE_TTL + Duration::from_secs(1);
        let delegated = Route::WellKnown {
            host: "fed.example".to_owned(),
            port: 443,
        };
        assert_eq!(discovery.route_at(&name, retry).await, delegated);
        assert_eq!(server.fetches(), 2);

        server.set_reply(Reply::delegate("fed2.example"));
        let cached = retry + SUCCESS_TTL - Duration::from_secs(1);
        assert_eq!(discovery.route_at(&name, cached).await, delegated);
        assert_eq!(server.fetches(), 2);
        let refreshed = retry + SUCCESS_TTL + Duration::from_secs(1);
        assert_eq!(
            discovery.route_at(&name, refreshed).await,
            Route::WellKnown {
                host: "fed2.example".to_owned(),
                port: DEFAULT_PORT,
            }
        );
        assert_eq!(server.fetches(), 3);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_documents_max_age_is_honoured_within_bounds() {
    bounded(async {
        let ca = Ca::new();
        let server = Server::well_known(
            &ca,
            Reply::delegate("fed.example").header("cache-control", "public, max-age=120"),
        );
        let discovery = ca.discovery();
        let name = server.name();
        let start = Instant::now();
        discovery.route_at(&name, start).await;
        discovery.route_at(&name, start + Duration::from_secs(119)).await;
        assert_eq!(server.fetches(), 1);
        discovery.route_at(&name, start + Duration::from_secs(121)).await;
        assert_eq!(server.fetches(), 2);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_look_ups_share_one_fetch() {
    bounded(async {
        let ca = Ca::new();
        let server = Server::well_known(&ca, Reply::delegate("fed.example"));
        let discovery = ca.discovery();
        let name = server.name();
        let routes = tokio::join!(
            discovery.route(&name),
            discovery.route(&name),
            discovery.route(&name),
            discovery.route(&name),
        );
        assert_eq!(routes.0, routes.3);
        assert!(matches!(routes.0, Route::WellKnown { .. }));
        assert_eq!(server.fetches(), 1);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn static_peers_are_not_looked_up() {
    bounded(async {
        let ca = Ca::new();
        let well_known = Server::well_known(&ca, Reply::delegate("localhost:1"));
        let federation = Server::start(
            Ipv4Addr::new(127, 0, 0, 2),
            ca.issue(&["localhost"]),
            Some(ca.roots()),
            Reply::new(200, "static"),
        );
        let server = well_known.name();
        let client = ca.client([(server.clone(), federation.addr)].into_iter().collect());

        assert_eq!(client.route(&server).await, Route::Static(federation.addr));
        let response = get_version(&client, &server).await.unwrap();
        assert_eq!(response.text().await.unwrap(), "static");
        assert_eq!(well_known.fetches(), 0);
        well_known.stop().await;
        federation.stop().await;
    })
    .await;
}

#[test]
fn well_known_urls_use_the_names_port_or_443() {
    assert_eq!(
        well_known_url(&name("b.example")),
        "https://b.example:443/.well-known/parley/server"
    );
    assert_eq!(
        well_known_url(&name("localhost:8443")),
        "https://localhost:8443/.well-known/parley/server"
    );
}

#[test]
fn delegation_targets_parse_with_8448_by_default() {
    assert_eq!(parse_server("Fed.B.example"), Ok(("fed.b.example".to_owned(), 8448)));
    assert_eq!(parse_server("fed.b.example:443"), Ok(("fed.b.example".to_owned(), 443)));
    assert_eq!(parse_server("192.0.2.1:9000"), Ok(("192.0.2.1".to_owned(), 9000)));
    for bad in [
        "",
        ":443",
        "fed.b.example:",
        "fed b",
        "https://fed.b.example",
        "[::1]:8448",
        "a..b",
    ] {
        assert!(parse_server(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn max_age_is_clamped_and_defaults_to_an_hour() {
    let ttl = |values: &[&str]| {
        let mut headers = reqwest::header::HeaderMap::new();
        for value in values {
            headers.append(reqwest::header::CACHE_CONTROL, value.parse().unwrap());
        }
        success_ttl(&headers)
    };
    assert_eq!(ttl(&[]), SUCCESS_TTL);
    assert_eq!(ttl(&["public"]), SUCCESS_TTL);
    assert_eq!(ttl(&["max-age=600"]), Duration::from_secs(600));
    assert_eq!(ttl(&["Max-Age=600, public"]), Duration::from_secs(600));
    assert_eq!(ttl(&["max-age=5"]), MIN_SUCCESS_TTL);
    assert_eq!(ttl(&["no-store"]), MIN_SUCCESS_TTL);
    assert_eq!(ttl(&["max-age=99999999999"]), MAX_SUCCESS_TTL);
    assert_eq!(ttl(&["max-age=600", "max-age=300"]), Duration::from_secs(300));
    assert_eq!(ttl(&["max-age=soon"]), SUCCESS_TTL);
}

#[tokio::test]
async fn the_resolver_maps_only_discovered_and_static_hosts() {
    let resolver = Resolver::new(Reach::Any);
    let pinned = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 8448);
    resolver.set("static.test", Mapping::Static(pinned));
    resolver.set(
        "delegating.test",
        Mapping::Delegated {
            host: "127.0.0.2".to_owned(),
            by: name("delegating.test"),
        },
    );
    // A delegation never replaces a static peer.
    resolver.set(
        "static.test",
        Mapping::Delegated {
            host: "127.0.0.3".to_owned(),
            by: name("static.test"),
        },
    );
    let resolve = |host: &str| {
        let fut = resolver.resolve(host.parse().unwrap());
        async move { fut.await.map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>()) }
    };
    assert_eq!(resolve("static.test").await.unwrap(), [pinned.ip()]);
    assert_eq!(
        resolve("delegating.test").await.unwrap(),
        [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]
    );
    assert!(
        resolve("localhost")
            .await
            .unwrap()
            .contains(&IpAddr::V4(Ipv4Addr::LOCALHOST))
    );

    // Only the name that set a delegation removes it.
    resolver.forget(&name("delegating.test:8000"));
    assert!(resolver.mapping("delegating.test").is_some());
    resolver.forget(&name("delegating.test"));
    assert!(resolver.mapping("delegating.test").is_none());
    resolver.forget(&name("static.test"));
    assert!(matches!(resolver.mapping("static.test"), Some(Mapping::Static(_))));
}

#[test]
fn outbound_futures_can_be_spawned() {
    fn is_send<T: Send>(_: T) {}
    let _ = |client: &FederationClient, discovery: &Discovery, name: &ServerName| {
        is_send(client.route(name));
        is_send(get_version(client, name));
        is_send(client.fetch_keys(name, 0));
        is_send(discovery.route(name));
    };
}

#[test]
fn only_public_addresses_are_public() {
    for private in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "240.0.0.1",
        "224.0.0.1",
        "192.0.2.1",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ] {
        assert!(!is_public(private.parse().unwrap()), "{private} is not public");
    }
    for public in [
        "1.1.1.1",
        "93.184.216.34",
        "100.128.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        assert!(is_public(public.parse().unwrap()), "{public} is public");
    }
}

#[test]
fn ip_address_names_are_reached_only_as_static_peers_or_when_any_address_is() {
    let pki = Ca::new();
    let peer = name("127.0.0.1:9000");
    let peers = BTreeMap::from([(peer.clone(), "127.0.0.1:9000".parse().unwrap())]);
    let public_only = Discovery::new(peers, pki.roots(), Reach::PublicOnly).unwrap();
    assert!(public_only.check_reachable(&peer).is_ok());
    assert!(public_only.check_reachable(&name("127.0.0.1:9001")).is_err());
    assert!(public_only.check_reachable(&name("10.0.0.5:22")).is_err());
    assert!(public_only.check_reachable(&name("example.org")).is_ok());
    let any = Discovery::new(BTreeMap::new(), pki.roots(), Reach::Any).unwrap();
    assert!(any.check_reachable(&name("127.0.0.1:9001")).is_ok());
}

#[tokio::test]
async fn names_resolving_to_private_addresses_are_not_dialled() {
    let resolver = Resolver::new(Reach::PublicOnly);
    let refused = resolver.resolve("localhost".parse().unwrap()).await.err().unwrap();
    assert!(refused.to_string().contains("no public address"), "{refused}");
    let pinned = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8448);
    resolver.set("static.test", Mapping::Static(pinned));
    let addrs: Vec<_> = resolver
        .resolve("static.test".parse().unwrap())
        .await
        .unwrap()
        .collect();
    assert_eq!(addrs, [pinned]);
}
