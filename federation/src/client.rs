//! Outbound federation requests: HTTPS with this server's certificate as the TLS client
//! identity (so the peer can check it is valid for the origin we claim), HTTP/2 and
//! pooled connections, and every request signed with the server key.
//!
//! Where a peer listens is [`crate::discovery`]'s answer: a static address (what tests and
//! private federations use), the host and port its well-known document delegates to, or
//! its name on the port the name gives or 8448. Whatever the address, the URL keeps the
//! server name's host, so the peer's certificate is checked against the server name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parley_specs::ServerName;
use parley_specs::endpoints::federation::SERVER_KEYS;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::discovery::{Discovery, Route};
use crate::key_document::{DocumentError, KeyDocument, VerifiedKeys};
use crate::request_auth::{RequestParts, authorization};
use crate::server_key::ServerKeyring;

/// The federation port when nothing else is configured.
pub const DEFAULT_PORT: u16 = 8448;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up the federation client: {0}")]
    Setup(String),
    #[error("{destination} cannot be reached: {reason}")]
    Unreachable { destination: String, reason: String },
    #[error("{destination} answered {status}: {body}")]
    Refused {
        destination: String,
        status: u16,
        body: String,
    },
    #[error("{destination} sent a key document that does not verify: {reason}")]
    BadKeys {
        destination: String,
        #[source]
        reason: DocumentErrorOrJson,
    },
}

/// Why a fetched key document was refused.
#[derive(Debug, thiserror::Error)]
pub enum DocumentErrorOrJson {
    #[error("{0}")]
    Document(#[from] DocumentError),
    #[error("not a key document: {0}")]
    Json(String),
}

/// Sends this server's federation requests.
pub struct FederationClient {
    http: reqwest::Client,
    origin: ServerName,
    discovery: Discovery,
}

impl FederationClient {
    /// `identity` is this server's certificate chain and key; peers' certificates (and
    /// the certificates their well-known documents are served with) must chain to
    /// `roots`; `peers` pins the addresses of some servers, which are then never looked
    /// up. Other servers are found through their well-known document.
    pub fn new(
        origin: ServerName,
        identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        roots: rustls::RootCertStore,
        peers: BTreeMap<ServerName, SocketAddr>,
    ) -> Result<Self, ClientError> {
        let discovery = Discovery::new(peers, roots.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(identity.0, identity.1)
            .map_err(|e| ClientError::Setup(format!("this server's certificate and key: {e}")))?;
        // A preconfigured TLS backend gets no ALPN from reqwest: offer HTTP/2 ourselves,
        // so concurrent requests to a peer share one connection.
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The resolver sends a server name's host to its static or delegated address; a
        // proxy would resolve the name itself and bypass it.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .dns_resolver(discovery.resolver())
            .no_proxy()
            // A signed request names its destination and path; following a redirect
            // would send it somewhere it was not signed for.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            origin,
            discovery,
        })
    }

    pub fn origin(&self) -> &ServerName {
        &self.origin
    }

    /// Where requests to `destination` go (static, delegated or fallback; cached).
    pub async fn route(&self, destination: &ServerName) -> Route {
        self.discovery.route(destination).await
    }

    /// `https://<destination host>:<routed port><path>`, and the route: the certificate
    /// is checked against the server name whatever address it resolves to.
    async fn url(&self, destination: &ServerName, path: &str) -> (String, Route) {
        let route = self.discovery.route(destination).await;
        let url = format!("https://{}:{}{path}", destination.host(), route.port());
        (url, route)
    }

    /// Fetches and verifies `destination`'s key document.
    pub async fn fetch_keys(&self, destination: &ServerName, now_ms: i64) -> Result<VerifiedKeys, ClientError> {
        let (url, route) = self.url(destination, SERVER_KEYS.path).await;
        let response = self.http.get(url).send().await;
        let body = self.success(destination, &route, response).await?;
        let document: KeyDocument = serde_json::from_slice(&body).map_err(|e| ClientError::BadKeys {
            destination: destination.to_string(),
            reason: DocumentErrorOrJson::Json(e.to_string()),
        })?;
        document.verify(destination, now_ms).map_err(|e| ClientError::BadKeys {
            destination: destination.to_string(),
            reason: e.into(),
        })
    }

    /// Sends a signed request and returns the response, whatever its status.
    pub async fn send(
        &self,
        keyring: &ServerKeyring,
        method: reqwest::Method,
        destination: &ServerName,
        path_and_query: &str,
        body: Vec<u8>,
        now_ms: i64,
    ) -> Result<reqwest::Response, ClientError> {
        let parts = RequestParts {
            method: method.as_str(),
            path_and_query,
            body: &body,
        };
        let auth = authorization(keyring, &self.origin, destination, &parts, now_ms);
        let (url, route) = self.url(destination, path_and_query).await;
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::AUTHORIZATION, auth);
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        request.send().await.map_err(|e| unreachable(destination, &route, &e))
    }

    async fn success(
        &self,
        destination: &ServerName,
        route: &Route,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Vec<u8>, ClientError> {
        let unreachable = |e: reqwest::Error| unreachable(destination, route, &e);
        let response = response.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ClientError::Refused {
                destination: destination.to_string(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(500).collect(),
            });
        }
        Ok(body.to_vec())
    }
}

/// A request that got no answer, saying where it went.
fn unreachable(destination: &ServerName, route: &Route, err: &reqwest::Error) -> ClientError {
    ClientError::Unreachable {
        destination: destination.to_string(),
        reason: format!("at {route}: {}", error_chain(err)),
    }
}

/// The error with its causes: reqwest's top-level message rarely says what went wrong.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
