//! A federation peer for tools that speak plain HTTP: a loopback HTTP server that forwards
//! every request it gets to a homeserver's federation API over mutual TLS, with the
//! certificate of a configured peer server, and signs it as that peer (`Parley-Federation`
//! authorization with the peer's ed25519 key) when the request asks for it.
//!
//! A third-party fuzzer (schemathesis, `tests/tests/schemathesis.rs`) cannot sign: without
//! this it only ever sees 401s and never reaches the handlers behind authentication. A
//! request whose `Authorization` is exactly [`SIGN_AS_PEER`] is signed; any other request
//! goes on with its own `Authorization` (or none), so a fuzzer's checks that a request
//! without or with wrong credentials is refused still see the homeserver's own answer.
//! The answer (status, headers, body) comes back as the homeserver gave it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use parley_federation::request_auth::{RequestParts, authorization};
use parley_federation::server_key::ServerKeyring;
use parley_homeserver::devcerts::IssuedCert;
use parley_specs::ServerName;

use crate::server::https_client;

/// The `Authorization` value that asks the proxy to sign the request as its peer.
pub const SIGN_AS_PEER: &str = "Parley-Federation sign-as-peer";

/// Headers not passed on: per connection, or set again for the next hop.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "host",
    "content-length",
];

struct Forwarder {
    origin: ServerName,
    destination: ServerName,
    /// `https://localhost:<destination's federation port>`
    base: String,
    keyring: ServerKeyring,
    http: reqwest::Client,
    /// The last timestamp signed: each request gets a later one, so two identical requests
    /// in one millisecond are not taken for a replay.
    last_ts: AtomicI64,
    signed: AtomicU64,
    forwarded: AtomicU64,
}

pub struct SigningProxy {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    forwarder: Arc<Forwarder>,
    handle: ServerHandle,
}

impl SigningProxy {
    /// Listens on a free loopback port and forwards to `destination`'s federation API at
    /// `destination_addr`, presenting `identity` (a certificate valid for `origin`) and
    /// signing with `keyring`, `origin`'s key (whose key document the destination must be
    /// able to fetch: `origin` is a real server it federates with).
    pub fn start(
        origin: ServerName,
        keyring: ServerKeyring,
        identity: &IssuedCert,
        destination: ServerName,
        destination_addr: SocketAddr,
    ) -> Self {
        let forwarder = Arc::new(Forwarder {
            origin,
            destination,
            base: format!("https://localhost:{}", destination_addr.port()),
            keyring,
            http: https_client(Some(identity)),
            last_ts: AtomicI64::new(0),
            signed: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let data = web::Data::from(forwarder.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                // Whatever the fuzzer sends, up to what the homeserver itself would read.
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(forward))
        })
        .workers(2)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://{addr}"),
            forwarder,
            handle,
        }
    }

    /// Requests forwarded signed so far.
    pub fn signed(&self) -> u64 {
        self.forwarder.signed.load(Ordering::SeqCst)
    }

    /// Requests forwarded so far, signed or not.
    pub fn forwarded(&self) -> u64 {
        self.forwarder.forwarded.load(Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

impl Forwarder {
    fn next_ts(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let previous = self
            .last_ts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)))
            .unwrap_or(now);
        now.max(previous + 1)
    }
}

async fn forward(req: HttpRequest, body: web::Bytes, forwarder: web::Data<Forwarder>) -> HttpResponse {
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(url) = url::Url::parse(&format!("{}{path_and_query}", forwarder.base)) else {
        return HttpResponse::BadRequest().body("signing proxy: not a URL path");
    };
    // Signed as it is sent: the URL parser may have normalised the path's encoding.
    let sent_path = &url[url::Position::BeforePath..];
    let Ok(method) = reqwest::Method::from_bytes(req.method().as_str().as_bytes()) else {
        return HttpResponse::BadRequest().body("signing proxy: method");
    };
    let mut request = forwarder.http.request(method.clone(), url.clone());
    let mut sign = false;
    for (name, value) in req.headers() {
        let lower = name.as_str().to_ascii_lowercase();
        if HOP_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if lower == "authorization" && value.as_bytes() == SIGN_AS_PEER.as_bytes() {
            sign = true;
            continue;
        }
        request = request.header(name.as_str(), value.as_bytes());
    }
    if sign {
        let parts = RequestParts {
            method: method.as_str(),
            path_and_query: sent_path,
            body: &body,
        };
        let auth = authorization(
            &forwarder.keyring,
            &forwarder.origin,
            &forwarder.destination,
            &parts,
            forwarder.next_ts(),
        );
        request = request.header("authorization", auth);
        forwarder.signed.fetch_add(1, Ordering::SeqCst);
    }
    forwarder.forwarded.fetch_add(1, Ordering::SeqCst);
    let response = match request.body(body.to_vec()).send().await {
        Ok(response) => response,
        Err(error) => return HttpResponse::BadGateway().body(format!("signing proxy: {error}")),
    };
    let mut answer =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(response.status().as_u16()).expect("status"));
    for (name, value) in response.headers() {
        if !HOP_HEADERS.contains(&name.as_str()) {
            answer.append_header((name.as_str(), value.as_bytes()));
        }
    }
    match response.bytes().await {
        Ok(bytes) => answer.body(bytes.to_vec()),
        Err(error) => HttpResponse::BadGateway().body(format!("signing proxy: {error}")),
    }
}
