//! Outbound federation requests: HTTPS with this server's certificate as the TLS client
//! identity (so the peer can check it is valid for the origin we claim), HTTP/2 and
//! pooled connections, and every request signed with the server key.
//!
//! Where a peer listens: a static map from server name to address (what tests and private
//! federations use); otherwise the server name itself on the federation port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parley_specs::ServerName;
use parley_specs::endpoints::federation::SERVER_KEYS;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    peers: BTreeMap<ServerName, SocketAddr>,
}

impl FederationClient {
    /// `identity` is this server's certificate chain and key; peers' certificates must
    /// chain to `roots`; `peers` pins the addresses of some servers.
    pub fn new(
        origin: ServerName,
        identity: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        roots: rustls::RootCertStore,
        peers: BTreeMap<ServerName, SocketAddr>,
    ) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(identity.0, identity.1)
            .map_err(|e| ClientError::Setup(format!("this server's certificate and key: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90));
        for (name, addr) in &peers {
            builder = builder.resolve(name.host(), *addr);
        }
        let http = builder.build().map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self { http, origin, peers })
    }

    pub fn origin(&self) -> &ServerName {
        &self.origin
    }

    /// `https://<destination host>:<port><path>`: the certificate is checked against the
    /// server name whatever address it resolves to.
    fn url(&self, destination: &ServerName, path: &str) -> String {
        let port = match self.peers.get(destination) {
            Some(addr) => addr.port(),
            None => destination.port().unwrap_or(DEFAULT_PORT),
        };
        format!("https://{}:{port}{path}", destination.host())
    }

    /// Fetches and verifies `destination`'s key document.
    pub async fn fetch_keys(&self, destination: &ServerName, now_ms: i64) -> Result<VerifiedKeys, ClientError> {
        let response = self.http.get(self.url(destination, SERVER_KEYS.path)).send().await;
        let body = self.success(destination, response).await?;
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
        let mut request = self
            .http
            .request(method, self.url(destination, path_and_query))
            .header(reqwest::header::AUTHORIZATION, auth);
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        request.send().await.map_err(|e| ClientError::Unreachable {
            destination: destination.to_string(),
            reason: error_chain(&e),
        })
    }

    async fn success(
        &self,
        destination: &ServerName,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<Vec<u8>, ClientError> {
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            destination: destination.to_string(),
            reason: error_chain(&e),
        };
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

/// The error with its causes: reqwest's top-level message rarely says what went wrong.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
