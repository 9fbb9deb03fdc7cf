//! Every call this server makes to another one. Requests are signed with this server's
//! key and go out through `Remote::call`, which refuses servers the federation policy
//! does not allow; the outbound queue sender, KeyPackage claims, forwarded submits,
//! relayed receipts, delivery questions, backfill requests, device list fetches and
//! group info requests all use it. Key documents (public and self-signed) are fetched by
//! `peer_keys` unsigned, only for a server whose request passed the policy or whose group
//! this server follows.
//!
//! This module is below the domain: the hub, inboxes and key packages call it, and it
//! imports nothing from the API handlers (`api/`, `federation/`, `admin/`).

pub mod backfill;
pub mod blobs;
pub mod claims;
pub mod delivery;
pub mod device_keys;
pub mod forward;
pub mod group_info;
pub mod key_notice;
mod keyring;
pub mod ordered;
pub mod outbound;
pub mod peer_keys;
pub mod policy;
pub mod receipts;
pub mod transparency;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parley_federation::client::{BodyError, ClientError, FederationClient, read_capped};
use parley_specs::{ErrorCode, ServerName};

pub use backfill::Backfills;
pub use keyring::KeyringFile;
pub use outbound::OutboundKicks;
pub use peer_keys::PeerKeys;
pub use policy::FederationPolicy;

use crate::config::FederationConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;

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
    /// Questions put to other servers' hubs, per user of this server.
    pub hub_questions: RateLimiter,
}

impl Remote {
    /// Counts a question `user`'s device has this server put to another server's hub
    /// (`hub_questions_per_user_per_minute`).
    pub fn check_hub_question(&self, user: &parley_specs::UserId) -> Result<(), ApiError> {
        self.hub_questions.check(user.as_str()).map_err(ApiError::rate_limited)
    }
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

/// Why a request was not answered, as this server's users may see it: whether the name
/// is refused, or the peer could not be reached — never how (closed port, TLS, DNS) nor
/// what answered, which would turn federation into a scanner of whatever a user names.
/// The details go to the log, for the operator.
pub(crate) fn not_sent(destination: &ServerName, error: ClientError) -> ApiError {
    tracing::warn!(%destination, %error, "a federation request was not sent or not answered");
    match error {
        ClientError::NotReached { .. } => ApiError::new(
            ErrorCode::ServerNotAllowed,
            format!(
                "this server does not federate with {destination}: servers that are not configured peers \
                 are reached only at public addresses"
            ),
        ),
        _ => unavailable(format!("{destination} could not be reached")),
    }
}

/// `destination` answered a request (`what`) with an error status: users are told the
/// status only, the operator's log gets the start of the answer too. A peer's answer is
/// never passed on to a user as text.
pub fn refused(destination: &ServerName, what: &str, status: reqwest::StatusCode, answer: &[u8]) -> ApiError {
    let answer = excerpt(answer);
    tracing::info!(%destination, %status, %answer, what, "another server refused a request");
    unavailable(format!("{destination} refused {what} ({status})"))
}

/// The start of an answer, for a message: enough to recognise it, never all of it, and
/// without control characters (see [`parley_federation::client::excerpt`]).
pub fn excerpt(answer: &[u8]) -> String {
    parley_federation::client::excerpt(answer)
}

/// The most read of an answer that is an acknowledgement, an error, a version, a submit's
/// result, or a list bounded by what was sent (receipts sent again, the groups of a
/// transaction being backfilled, a group's member servers): far more than any of them
/// needs. Claims and backfill pages carry KeyPackages and messages, and are bounded by the
/// configured transaction size instead (see [`Remote::bulk_answer_limit`]).
pub const MAX_SMALL_ANSWER_BYTES: usize = 1024 * 1024;

impl Remote {
    /// The most read of an answer carrying KeyPackages (a claim, one per device of the
    /// user) or ordered messages (a backfill page, which the hub cuts at the same size):
    /// `federation.max_transaction_bytes`, which every server of a federation sets alike.
    pub fn bulk_answer_limit(&self) -> usize {
        self.config.max_transaction_bytes
    }

    /// Sends a signed request to another server and reads its answer, whatever its
    /// status, up to `max_answer_bytes`. Every outbound request goes through here, so
    /// none reaches a server this one does not federate with (`server_not_allowed`); a
    /// server that cannot be reached, stops answering or answers with more than
    /// `max_answer_bytes` is `remote_unavailable`. A larger answer is not read past the
    /// limit: a peer cannot make this server hold more of an answer than it expects.
    pub async fn call(
        &self,
        method: reqwest::Method,
        destination: &ServerName,
        path_and_query: &str,
        body: Vec<u8>,
        max_answer_bytes: usize,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ApiError> {
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
            .map_err(|e| not_sent(destination, e))?;
        let status = response.status();
        let bytes = read_capped(response, max_answer_bytes).await.map_err(|e| match e {
            BodyError::TooLarge { limit } => {
                tracing::warn!(%destination, limit, "an answer over its limit was refused");
                unavailable(format!(
                    "{destination} answered with more than {limit} bytes; the rest was not read"
                ))
            }
            BodyError::Failed(reason) => unavailable(format!("{destination} did not finish its answer: {reason}")),
        })?;
        Ok((status, bytes))
    }
}
