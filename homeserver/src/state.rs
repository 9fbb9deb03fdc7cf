//! What every request handler can reach.

use std::sync::Arc;

use deadpool_postgres::Pool;

use actix_web::web;

use crate::config::Config;
use crate::federation::FederationState;
use crate::hub::writer::{MessageWriter, WriterRules};
use crate::inbox::InboxWaker;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    pub login_per_account: RateLimiter,
    pub login_per_address: RateLimiter,
    pub claims_per_account: RateLimiter,
    pub sends_per_device: RateLimiter,
    pub inbox_waker: Arc<InboxWaker>,
    pub message_writer: MessageWriter,
    /// Talking to other servers, when federation is enabled.
    pub federation: Option<web::Data<FederationState>>,
}

impl AppState {
    pub fn new(
        config: Config,
        pool: Pool,
        metrics: Arc<Metrics>,
        federation: Option<web::Data<FederationState>>,
    ) -> Self {
        let limits = &config.limits;
        let inbox_waker = Arc::new(InboxWaker::default());
        let rules = WriterRules {
            server_name: config.server_name.clone(),
            past_epochs_accepted: limits.past_epochs_accepted,
            outbound: federation.as_ref().map(|f| f.outbound.clone()),
        };
        Self {
            login_per_account: RateLimiter::per_minute(limits.login_attempts_per_account_per_minute),
            login_per_address: RateLimiter::per_minute(limits.login_attempts_per_address_per_minute),
            claims_per_account: RateLimiter::per_minute(limits.key_package_claims_per_account_per_minute),
            sends_per_device: RateLimiter::per_minute(limits.messages_per_device_per_minute),
            inbox_waker: inbox_waker.clone(),
            message_writer: MessageWriter::start(pool.clone(), rules, inbox_waker),
            federation,
            config,
            pool,
            metrics,
        }
    }
}
