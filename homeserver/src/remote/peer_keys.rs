//! Other servers' signing keys: their self-signed key documents, fetched over federation,
//! verified, and cached while valid. Requests from a server and the hub signatures on
//! its ordered messages are checked with them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use parley_federation::KeyId;
use parley_federation::key_document::VerifiedKeys;
use parley_federation::request_auth::SignedRequest;
use parley_specs::{ErrorCode, ServerName};

use super::{Remote, now_ms};
use crate::error::ApiError;

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

    /// The servers whose keys are cached: those that sent requests here, or whose
    /// signatures were checked.
    pub fn servers(&self) -> Vec<ServerName> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.keys().cloned().collect()
    }

    /// Remembers that a fetch for `wanted` found nothing new.
    fn looked_for(&self, server: &ServerName, wanted: &KeyId) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = cache.get_mut(server) {
            cached.looked_for.insert(wanted.clone());
        }
    }
}

/// The keys of a request's origin, fetched when unknown, expired, or missing the key the
/// request names.
pub async fn of_request(remote: &Remote, signed: &SignedRequest, now: i64) -> Result<VerifiedKeys, ApiError> {
    server_keys(remote, &signed.origin, now, Some((&signed.key_id, signed.timestamp_ms))).await
}

/// `server`'s keys, from the cache while they are valid.
pub async fn of_server(remote: &Remote, server: &ServerName) -> Result<VerifiedKeys, ApiError> {
    server_keys(remote, server, now_ms(), None).await
}

/// Fetches `server`'s key document again, unless it was fetched moments ago (a request
/// signed with a new key fetches it before its handler runs).
pub async fn refresh(remote: &Remote, server: &ServerName) -> Result<(), ApiError> {
    if remote
        .peer_keys
        .cached(server)
        .is_some_and(|c| c.fetched_at.elapsed() < REFETCH_AFTER)
    {
        return Ok(());
    }
    let keys = remote.client.fetch_keys(server, now_ms()).await.map_err(|e| {
        ApiError::new(
            ErrorCode::RemoteUnavailable,
            format!("cannot fetch the keys of {server}: {e}"),
        )
    })?;
    remote.peer_keys.store(keys, None);
    Ok(())
}

/// `server`'s keys holding `key_id` valid at `signed_at_ms` (a signature `server` made),
/// fetched when the cached ones lack it (as for a request naming a new key).
pub async fn with_key(
    remote: &Remote,
    server: &ServerName,
    key_id: &KeyId,
    signed_at_ms: i64,
) -> Result<VerifiedKeys, ApiError> {
    server_keys(remote, server, now_ms(), Some((key_id, signed_at_ms))).await
}

/// `server`'s keys: cached ones if still valid and holding the `wanted` key (id, signed
/// at), else fetched (see `REFETCH_AFTER`), else cached ones while valid.
async fn server_keys(
    remote: &Remote,
    server: &ServerName,
    now: i64,
    wanted: Option<(&KeyId, i64)>,
) -> Result<VerifiedKeys, ApiError> {
    let cached = remote.peer_keys.cached(server);
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
    match remote.client.fetch_keys(server, now).await {
        Ok(keys) => {
            remote.peer_keys.store(keys.clone(), wanted_id);
            Ok(keys)
        }
        Err(e) => match cached {
            // Keys fetched before stay good for what they were valid for.
            Some(cached) if cached.keys.valid_until_ms > now => {
                if let Some(id) = wanted_id {
                    remote.peer_keys.looked_for(server, id);
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
