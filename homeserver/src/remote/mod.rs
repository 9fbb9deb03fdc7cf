//! Every call this server makes to another one. Requests are signed with this server's
//! key and go out through `Remote::call`, which refuses servers the federation policy
//! does not allow; the outbound queue sender, KeyPackage claims, forwarded submits,
//! relayed receipts, delivery questions, backfill requests, key document and device list
//! fetches all use it.
//!
//! This module is below the domain: the hub, inboxes and key packages call it, and it
//! imports nothing from the API handlers (`api/`, `federation/`, `admin/`).

pub mod backfill;
pub mod claims;
pub mod delivery;
pub mod device_keys;
pub mod forward;
mod keyring;
pub mod ordered;
pub mod outbound;
pub mod peer_keys;
pub mod policy;
pub mod receipts;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parley_federation::client::FederationClient;
use parley_specs::{ErrorCode, ServerName};

pub use backfill::Backfills;
pub use keyring::KeyringFile;
pub use outbound::OutboundKicks;
pub use peer_keys::PeerKeys;
pub use policy::FederationPolicy;

use crate::config::FederationConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What talking to other servers needs; one per process, shared by the federation API,
/// the domain and the outbound sender.
pub struct Remote {
    pub server_name: ServerName,
    pub keys: KeyringFile,
    pub pool: deadpool_postgres::Pool,
    pub client: FederationClient,
    /// Other servers' verified key documents.
    pub peer_keys: PeerKeys,
    /// Other servers' users' verified device lists (the device key directory).
    pub device_keys: device_keys::DeviceKeyCache,
    /// Federation settings (the allow/deny lists in effect are `policy`'s).
    pub config: FederationConfig,
    /// Which servers this one federates with: the configuration file's lists, or those
    /// stored through the admin API.
    pub policy: Arc<FederationPolicy>,
    pub metrics: Arc<Metrics>,
    /// Destinations with messages newly queued for them.
    pub outbound: OutboundKicks,
    /// Groups this process is backfilling.
    pub backfills: Backfills,
}

/// Milliseconds since the Unix epoch, as signed requests and ordered messages carry them.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub fn unavailable(why: String) -> ApiError {
    ApiError::new(ErrorCode::RemoteUnavailable, why)
}

/// The start of an answer, for a message: enough to recognise it, never all of it.
pub fn excerpt(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).chars().take(300).collect()
}

impl Remote {
    /// Sends a signed request to another server and reads its whole answer, whatever its
    /// status. Every outbound request goes through here, so none reaches a server this
    /// one does not federate with (`server_not_allowed`); a server that cannot be reached
    /// or stops answering is `remote_unavailable`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        destination: &ServerName,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, Bytes), ApiError> {
        if !self.policy.permits(destination) {
            return Err(ApiError::new(
                ErrorCode::ServerNotAllowed,
                format!("this server does not federate with {destination}"),
            ));
        }
        let response = self
            .client
            .send(
                &self.keys.current(),
                method,
                destination,
                path_and_query,
                body,
                now_ms(),
            )
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(format!("{destination} did not finish its answer: {e}")))?;
        Ok((status, bytes))
    }
}
