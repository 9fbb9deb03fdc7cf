//! Who is calling: `Signed<T>` is the federation API's counterpart of `AuthedDevice`. A
//! request becomes one only when its `Parley-Federation` signature verifies with the
//! origin's published keys, it is addressed to this server, recent and not seen before,
//! the TLS client certificate is valid for that origin, the origin is one this server
//! federates with and within its request budget. Everything that needs no body is checked
//! before the body is read, and the body is read only up to its endpoint's limit.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{Extensions, Payload};
use actix_web::rt::net::TcpStream;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt as _;
use parley_federation::key_document::VerifiedKeys;
use parley_federation::request_auth::{AuthError, MAX_CLOCK_SKEW_MS, RequestParts, SignedRequest};
use parley_specs::federation_api::{
    ForwardedCommit, ForwardedLeave, ForwardedMessage, GroupInfoRequest, ReceiptsRequest, Transaction,
};
use parley_specs::keys_api::ClaimKeyPackagesRequest;
use parley_specs::{ErrorCode, ServerName};
use rustls::pki_types::CertificateDer;

use super::FederationApi;
use crate::error::ApiError;
use crate::remote::{now_ms, outbound, peer_keys};
use crate::store;

/// An authenticated federation request: its origin, the origin's keys that checked it,
/// and its body of type `T`.
pub struct Signed<T> {
    pub origin: ServerName,
    /// The origin's published keys, which checked the request (and check the hub
    /// signatures of the messages it carries).
    pub origin_keys: VerifiedKeys,
    pub body: T,
}

/// How large a request body an endpoint takes.
#[derive(Debug, Clone, Copy)]
pub enum BodyLimit {
    /// GET requests.
    Empty,
    /// Claims and receipts: fixed, small.
    Small,
    /// Forwarded submits: a client's submit and its sender (`limits.max_body_bytes`).
    Submit,
    /// Transactions (`federation.max_transaction_bytes`).
    Transaction,
}

/// The bytes of each `BodyLimit`, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub submit: usize,
    pub transaction: usize,
}

/// 500 receipts of about 400 bytes each fit with room to spare.
const SMALL_BODY_BYTES: usize = 1024 * 1024;

impl BodyLimits {
    fn bytes(&self, limit: BodyLimit) -> usize {
        match limit {
            BodyLimit::Empty => 0,
            BodyLimit::Small => SMALL_BODY_BYTES,
            BodyLimit::Submit => self.submit,
            BodyLimit::Transaction => self.transaction,
        }
    }
}

/// The body of a signed request.
pub trait SignedBody: Sized {
    const LIMIT: BodyLimit;

    fn parse(bytes: &[u8]) -> Result<Self, ApiError>;
}

/// The body of a GET request.
pub struct NoBody;

impl SignedBody for NoBody {
    const LIMIT: BodyLimit = BodyLimit::Empty;

    fn parse(_: &[u8]) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

macro_rules! json_body {
    ($type:ty, $limit:expr, $what:literal) => {
        impl SignedBody for $type {
            const LIMIT: BodyLimit = $limit;

            fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
                serde_json::from_slice(bytes)
                    .map_err(|e| ApiError::new(ErrorCode::BadJson, format!("the {} is not valid: {e}", $what)))
            }
        }
    };
}

json_body!(ClaimKeyPackagesRequest, BodyLimit::Small, "claim request");
json_body!(ReceiptsRequest, BodyLimit::Small, "receipts request");
json_body!(GroupInfoRequest, BodyLimit::Small, "group info request");
json_body!(ForwardedCommit, BodyLimit::Submit, "submit");
json_body!(ForwardedLeave, BodyLimit::Small, "leave");
json_body!(ForwardedMessage, BodyLimit::Submit, "submit");
json_body!(Transaction, BodyLimit::Transaction, "transaction");

impl<T: SignedBody + 'static> FromRequest for Signed<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let api = req
                .app_data::<web::Data<FederationApi>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("federation authentication", "FederationApi missing"))?;
            let limit = api.body_limits.bytes(T::LIMIT);
            let result = authenticate(&req, &mut payload, &api, limit).await;
            let outcome = match &result {
                Ok(_) => "authenticated",
                Err(e) => e.code.as_str(),
            };
            api.remote
                .metrics
                .federation_requests
                .with_label_values(&[outcome])
                .inc();
            let (origin, origin_keys, bytes) = result?;
            Ok(Signed {
                origin,
                origin_keys,
                body: T::parse(&bytes)?,
            })
        })
    }
}

/// The leaf certificate the peer presented in the TLS handshake.
#[derive(Clone)]
struct PeerCertificate(CertificateDer<'static>);

/// Keeps the peer's certificate with the connection (`HttpServer::on_connect`).
pub fn capture_peer_certificate(connection: &dyn Any, extensions: &mut Extensions) {
    if let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() {
        let (_, session) = tls.get_ref();
        if let Some(leaf) = session.peer_certificates().and_then(|certs| certs.first()) {
            extensions.insert(PeerCertificate(leaf.clone().into_owned()));
        }
    }
}

fn refused(err: AuthError) -> ApiError {
    let code = match &err {
        AuthError::Missing => ErrorCode::MissingSignature,
        AuthError::WrongDestination { .. } => ErrorCode::WrongDestination,
        AuthError::Stale { .. } => ErrorCode::StaleRequest,
        AuthError::Malformed(_)
        | AuthError::UnknownKey { .. }
        | AuthError::KeysOfAnotherServer { .. }
        | AuthError::BadSignature => ErrorCode::InvalidSignature,
    };
    ApiError::new(code, err.to_string())
}

/// The origin, its keys and the body of an authentic request.
async fn authenticate(
    req: &HttpRequest,
    payload: &mut Payload,
    api: &FederationApi,
    limit: usize,
) -> Result<(ServerName, VerifiedKeys, web::Bytes), ApiError> {
    let remote = &api.remote;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let signed = SignedRequest::parse(header).map_err(refused)?;
    // Before anything costs work: no key fetch for a server we do not federate with.
    if !remote.policy.permits(&signed.origin) {
        return Err(ApiError::new(
            ErrorCode::ServerNotAllowed,
            format!("this server does not federate with {}", signed.origin),
        ));
    }
    let now = now_ms();
    signed.check_addressing(&remote.server_name, now).map_err(refused)?;
    check_certificate(req, &signed.origin)?;
    let body = read_body(req, payload, limit).await?;

    let keys = peer_keys::of_request(remote, &signed, now).await?;
    let path_and_query = req.uri().path_and_query().map_or(req.path(), |p| p.as_str());
    let parts = RequestParts {
        method: req.method().as_str(),
        path_and_query,
        body: &body,
    };
    let verified = signed
        .verify(&parts, &remote.server_name, now, &keys)
        .map_err(refused)?;
    api.requests_per_origin
        .check(verified.origin.as_str())
        .map_err(ApiError::rate_limited)?;
    let mut db = remote.pool.get().await?;
    // The record is not user data: losing the last few in a crash only lets a request
    // seen just before it be replayed within the skew window, and every federation
    // write is idempotent (transactions by (group, seq), submits by txn_id). So it does
    // not wait for its own disk flush, which would otherwise precede every request.
    let tx = db.transaction().await?;
    store::commit_without_waiting_for_disk(&tx).await?;
    let first_time = store::federation::remember_request(&tx, &verified.replay_key()).await?;
    tx.commit().await?;
    if !first_time {
        return Err(ApiError::new(
            ErrorCode::ReplayedRequest,
            "this signed request was received before",
        ));
    }
    outbound::peer_is_alive(remote, &verified.origin).await;
    Ok((verified.origin, keys, body))
}

/// The body, refused as soon as it is known to exceed `limit`: from its declared length
/// before any of it is read, or once the bytes read pass it.
async fn read_body(req: &HttpRequest, payload: &mut Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than this endpoint's {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorCode::BadJson, format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn check_certificate(req: &HttpRequest, origin: &ServerName) -> Result<(), ApiError> {
    let mismatch = |why: String| ApiError::new(ErrorCode::CertificateMismatch, why);
    let certificate = req
        .conn_data::<PeerCertificate>()
        .ok_or_else(|| mismatch("the connection has no client certificate".into()))?;
    let parsed = rustls::server::ParsedCertificate::try_from(&certificate.0)
        .map_err(|e| mismatch(format!("the client certificate cannot be read: {e}")))?;
    let name = rustls::pki_types::ServerName::try_from(origin.host())
        .map_err(|e| mismatch(format!("{origin} is not a certificate name: {e}")))?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|_| {
        mismatch(format!(
            "the client certificate is not valid for {origin}, the origin the request claims"
        ))
    })
}

/// Forgets replay records older than the clock-skew window, every minute. Safe on every
/// process at once.
pub async fn forget_old_requests_forever(pool: deadpool_postgres::Pool) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        ticker.tick().await;
        let result = async {
            let db = pool.get().await.map_err(|e| e.to_string())?;
            store::federation::forget_requests_older_than(&db, 2 * MAX_CLOCK_SKEW_MS)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cannot forget old federation requests; retrying later");
        }
    }
}
