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

use crate::discovery::{Discovery, Reach, Route};
use crate::key_document::{DocumentError, KeyDocument, VerifiedKeys};
use crate::request_auth::{RequestParts, authorization};
use crate::server_key::ServerKeyring;

/// The federation port when nothing else is configured.
pub const DEFAULT_PORT: u16 = 8448;
/// The largest key document read. A document lists a server's current and retired keys
/// (a few hundred bytes each): far below this, which a peer cannot make us exceed.
pub const MAX_KEY_DOCUMENT_BYTES: usize = 64 * 1024;
/// How much of a refusal's body is read, for its excerpt.
const MAX_REFUSAL_BYTES: usize = 4 * 1024;
/// The most characters of another server's answer that an error message repeats.
pub const EXCERPT_CHARS: usize = 200;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up the federation client: {0}")]
    Setup(String),
    #[error("{destination} cannot be reached: {reason}")]
    Unreachable { destination: String, reason: String },
    /// Nothing was dialled: the name is not one this server reaches (see [`Reach`]).
    #[error("{destination} is not reached: {reason}")]
    NotReached { destination: String, reason: String },
    /// `body` is an [`excerpt`] of the answer, never all of it.
    #[error("{destination} answered {status}: {body}")]
    Refused {
        destination: String,
        status: u16,
        body: String,
    },
    #[error("{destination} answered with more than {limit} bytes; the rest was not read")]
    TooLarge { destination: String, limit: usize },
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
    /// up. Other servers are found through their well-known document, and must have
    /// addresses `reach` permits.
    pub fn new(
        origin: ServerName,
        identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        roots: rustls::RootCertStore,
        peers: BTreeMap<ServerName, SocketAddr>,
        reach: Reach,
    ) -> Result<Self, ClientError> {
        let discovery = Discovery::new(peers, roots.clone(), reach)?;
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
    async fn url(&self, destination: &ServerName, path: &str) -> Result<(String, Route), ClientError> {
        self.discovery
            .check_reachable(destination)
            .map_err(|reason| ClientError::NotReached {
                destination: destination.to_string(),
                reason,
            })?;
        let route = self.discovery.route(destination).await;
        let url = format!("https://{}:{}{path}", destination.host(), route.port());
        Ok((url, route))
    }

    /// Fetches and verifies `destination`'s key document.
    pub async fn fetch_keys(&self, destination: &ServerName, now_ms: i64) -> Result<VerifiedKeys, ClientError> {
        let (url, route) = self.url(destination, SERVER_KEYS.path).await?;
        let response = self.http.get(url).send().await;
        let body = self
            .success(destination, &route, response, MAX_KEY_DOCUMENT_BYTES)
            .await?;
        let document: KeyDocument = serde_json::from_slice(&body).map_err(|e| ClientError::BadKeys {
            destination: destination.to_string(),
            reason: DocumentErrorOrJson::Json(e.to_string()),
        })?;
        document.verify(destination, now_ms).map_err(|e| ClientError::BadKeys {
            destination: destination.to_string(),
            reason: e.into(),
        })
    }

    /// Sends a signed request and returns the response, whatever its status. Its body is
    /// the caller's to read, with [`read_capped`].
    pub async fn send(
        &self,
        keyring: &ServerKeyring,
        method: reqwest::Method,
        destination: &ServerName,
        path_and_query: &str,
        body: Vec<u8>,
        now_ms: i64,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_within(
            keyring,
            method,
            destination,
            path_and_query,
            body,
            now_ms,
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// [`FederationClient::send`] with another time allowed for the whole exchange (a
    /// large body streamed in its answer, such as a blob).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_within(
        &self,
        keyring: &ServerKeyring,
        method: reqwest::Method,
        destination: &ServerName,
        path_and_query: &str,
        body: Vec<u8>,
        now_ms: i64,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let parts = RequestParts {
            method: method.as_str(),
            path_and_query,
            body: &body,
        };
        let auth = authorization(keyring, &self.origin, destination, &parts, now_ms);
        let (url, route) = self.url(destination, path_and_query).await?;
        let mut request = self
            .http
            .request(method, url)
            .timeout(timeout)
            .header(reqwest::header::AUTHORIZATION, auth);
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        request.send().await.map_err(|e| unreachable(destination, &route, &e))
    }

    /// The body of a 2xx answer of at most `limit` bytes, or why there is none.
    async fn success(
        &self,
        destination: &ServerName,
        route: &Route,
        response: Result<reqwest::Response, reqwest::Error>,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let response = response.map_err(|e| unreachable(destination, route, &e))?;
        let status = response.status();
        if !status.is_success() {
            // Only the start of a refusal is read: it is for a message.
            let body = match read_capped(response, MAX_REFUSAL_BYTES).await {
                Ok(body) => excerpt(&body),
                Err(BodyError::TooLarge { .. }) => "(a long answer, not read)".to_owned(),
                Err(BodyError::Failed(_)) => "(an answer cut off)".to_owned(),
            };
            return Err(ClientError::Refused {
                destination: destination.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        read_capped(response, limit).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => ClientError::TooLarge {
                destination: destination.to_string(),
                limit,
            },
            BodyError::Failed(reason) => ClientError::Unreachable {
                destination: destination.to_string(),
                reason: format!("at {route}: the answer was cut off: {reason}"),
            },
        })
    }
}

/// Why the body of another server's answer was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{0}")]
    Failed(String),
}

/// The body of an answer from another server, read chunk by chunk and refused as soon as
/// it passes `limit` bytes (or declares more), without reading the rest: a peer must not
/// make this server hold more than it expects of that answer.
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| BodyError::Failed(error_chain(&e)))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of another server's answer, for a message: at most [`EXCERPT_CHARS`]
/// characters, control characters (line breaks, terminal escapes) replaced, so that a
/// peer can neither flood nor forge our logs and errors with its answer.
pub fn excerpt(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let mut excerpt: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        excerpt.push('…');
    }
    excerpt
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_short_and_has_no_control_characters() {
        assert_eq!(excerpt(b"not found"), "not found");
        let long = excerpt("é".repeat(1000).as_bytes());
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
        let forged = excerpt(b"x\n2024-01-01 INFO forged line\x1b[31m\r");
        assert!(!forged.chars().any(char::is_control), "{forged:?}");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
