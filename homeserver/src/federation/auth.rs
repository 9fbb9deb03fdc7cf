//! Who is calling: a federation request is accepted only when its `Parley-Federation`
//! signature verifies with the origin's published keys, it is addressed to this server,
//! recent and not seen before, and the TLS client certificate is valid for that origin.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use parley_federation::KeyId;
use parley_federation::key_document::VerifiedKeys;
use parley_federation::request_auth::{AuthError, MAX_CLOCK_SKEW_MS, RequestParts, SignedRequest};
use parley_specs::{ErrorCode, ServerName};
use rustls::pki_types::CertificateDer;

use super::{FederationState, now_ms};
use crate::error::ApiError;
use crate::store;

/// A peer whose request was authenticated.
#[derive(Debug, Clone)]
pub struct VerifiedPeer {
    pub origin: ServerName,
    /// Its published keys, which checked the request.
    pub keys: VerifiedKeys,
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

/// Verified key documents of other servers, refreshed when they expire or a request
/// names a key they do not list.
#[derive(Default)]
pub struct PeerKeys {
    cache: Mutex<HashMap<ServerName, CachedKeys>>,
}

#[derive(Clone)]
struct CachedKeys {
    keys: VerifiedKeys,
    fetched_at: Instant,
    /// Key ids not in `keys` that a refetch was made for: each gets one, so a rotation
    /// is picked up at its first request.
    looked_for: BTreeSet<KeyId>,
}

/// A server sending requests with keys it does not publish must not make us fetch its
/// document on every request: beyond one fetch per new key id (at most
/// `MAX_LOOKED_FOR` of them), at most one per this interval.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
const MAX_LOOKED_FOR: usize = 8;

impl PeerKeys {
    fn cached(&self, origin: &ServerName) -> Option<CachedKeys> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(origin).cloned()
    }

    /// Records a fetch made while looking for `wanted`.
    fn store(&self, keys: VerifiedKeys, wanted: Option<&KeyId>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Key ids looked for recently stay counted, so new ones cannot force a fetch each.
        let mut looked_for = cache
            .get(&keys.server_name)
            .filter(|c| c.fetched_at.elapsed() < REFETCH_AFTER)
            .map(|c| c.looked_for.clone())
            .unwrap_or_default();
        if let Some(id) = wanted.filter(|id| !keys.keys.contains_key(*id)) {
            looked_for.insert(id.clone());
        }
        cache.insert(
            keys.server_name.clone(),
            CachedKeys {
                keys,
                fetched_at: Instant::now(),
                looked_for,
            },
        );
    }

    /// Remembers that a fetch for `wanted` found nothing new.
    fn looked_for(&self, server: &ServerName, wanted: &KeyId) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get_mut(server) {
            cached.looked_for.insert(wanted.clone());
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

pub async fn authenticate(req: &HttpRequest, body: &[u8], state: &FederationState) -> Result<VerifiedPeer, ApiError> {
    let result = check_request(req, body, state).await;
    let outcome = match &result {
        Ok(_) => "authenticated",
        Err(e) => e.code.as_str(),
    };
    state.metrics.federation_requests.with_label_values(&[outcome]).inc();
    result
}

async fn check_request(req: &HttpRequest, body: &[u8], state: &FederationState) -> Result<VerifiedPeer, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default());
    let signed = SignedRequest::parse(header).map_err(refused)?;
    // Before anything costs work: no key fetch for a server we do not federate with.
    if !state.policy.permits(&signed.origin) {
        return Err(ApiError::new(
            ErrorCode::ServerNotAllowed,
            format!("this server does not federate with {}", signed.origin),
        ));
    }
    let now = now_ms();
    signed.check_addressing(&state.server_name, now).map_err(refused)?;
    check_certificate(req, &signed.origin)?;

    let keys = origin_keys(state, &signed, now).await?;
    let path_and_query = req.uri().path_and_query().map_or(req.path(), |p| p.as_str());
    let parts = RequestParts {
        method: req.method().as_str(),
        path_and_query,
        body,
    };
    let verified = signed.verify(&parts, &state.server_name, now, &keys).map_err(refused)?;
    state
        .requests_per_origin
        .check(verified.origin.as_str())
        .map_err(ApiError::rate_limited)?;
    let mut db = state.pool.get().await?;
    // The record is not user data: losing the last few in a crash only lets a request
    // seen just before it be replayed within the skew window, and every federation
    // write is idempotent (transactions by (group, seq), submits by txn_id). So it does
    // not wait for its own disk flush, which would otherwise precede every request.
    let tx = db.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit TO OFF").await?;
    let first_time = store::federation::remember_request(&tx, &verified.replay_key()).await?;
    tx.commit().await?;
    if !first_time {
        return Err(ApiError::new(
            ErrorCode::ReplayedRequest,
            "this signed request was received before",
        ));
    }
    super::outbound::peer_is_alive(state, &verified.origin).await;
    Ok(VerifiedPeer {
        origin: verified.origin,
        keys,
    })
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

/// The origin's keys, fetched when unknown, expired, or missing the key the request names.
async fn origin_keys(state: &FederationState, signed: &SignedRequest, now: i64) -> Result<VerifiedKeys, ApiError> {
    server_keys(state, &signed.origin, now, Some((&signed.key_id, signed.timestamp_ms))).await
}

/// `server`'s keys, from the cache while they are valid.
pub async fn keys_of(state: &FederationState, server: &ServerName) -> Result<VerifiedKeys, ApiError> {
    server_keys(state, server, now_ms(), None).await
}

/// `server`'s keys: cached ones if still valid and holding the `wanted` key (id, signed
/// at), else fetched (see `REFETCH_AFTER`), else cached ones while valid.
async fn server_keys(
    state: &FederationState,
    server: &ServerName,
    now: i64,
    wanted: Option<(&KeyId, i64)>,
) -> Result<VerifiedKeys, ApiError> {
    let cached = state.peer_keys.cached(server);
    if let Some(cached) = &cached {
        let has_wanted = wanted.is_none_or(|(id, at)| cached.keys.key_for(id, at).is_some());
        let usable = cached.keys.valid_until_ms > now && has_wanted;
        let new_key_id = wanted.is_some_and(|(id, _)| {
            !cached.keys.keys.contains_key(id)
                && !cached.looked_for.contains(id)
                && cached.looked_for.len() < MAX_LOOKED_FOR
        });
        if usable || (cached.fetched_at.elapsed() < REFETCH_AFTER && !new_key_id) {
            return Ok(cached.keys.clone());
        }
    }
    let wanted_id = wanted.map(|(id, _)| id);
    match state.client.fetch_keys(server, now).await {
        Ok(keys) => {
            state.peer_keys.store(keys.clone(), wanted_id);
            Ok(keys)
        }
        Err(e) => match cached {
            // Keys fetched before stay good for what they were valid for.
            Some(cached) if cached.keys.valid_until_ms > now => {
                if let Some(id) = wanted_id {
                    state.peer_keys.looked_for(server, id);
                }
                Ok(cached.keys)
            }
            _ => Err(ApiError::new(
                ErrorCode::InvalidSignature,
                format!("cannot obtain the keys of {server}: {e}"),
            )),
        },
    }
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
