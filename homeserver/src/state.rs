//! What every request handler can reach.

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::blob_store::{BlobStore, FsBlobStore};
use crate::config::Config;
use crate::cpu_pool::PasswordHashes;
use crate::hub::writer::MessageWriter;
use crate::inbox::InboxWaker;
use crate::metrics::Metrics;
use crate::rate_limit::{LoginThrottle, RateLimiter};
use crate::remote::Remote;
use crate::second_factor::SealingKey;
use crate::token_file::TokenHash;
use crate::transparency::Transparency;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    /// Failed logins per (account, network) and per account (see `rate_limit`).
    pub login_failures: LoginThrottle,
    /// Login and registration attempts per client address.
    pub login_per_address: RateLimiter,
    pub claims_per_account: RateLimiter,
    pub sends_per_device: RateLimiter,
    /// Password hashes waiting for the CPU pool, bounded (see `cpu_pool`).
    pub password_hashes: PasswordHashes,
    pub inbox_waker: Arc<InboxWaker>,
    pub message_writer: MessageWriter,
    /// Talking to other servers, when federation is enabled.
    pub remote: Option<Arc<Remote>>,
    /// The token `/metrics` needs (`[metrics] token_file`); unset, it is not served.
    pub metrics_token: Option<TokenHash>,
    /// Encrypted files' ciphertext (`[files]`).
    pub blobs: Arc<dyn BlobStore>,
    /// Seals TOTP secrets (`second_factor::sealing`); `None` when no key file is
    /// configured, and then enrolment answers `second_factor_unavailable`.
    pub second_factor_key: Option<Arc<SealingKey>>,
    /// This server's key directory (`transparency`), when it federates and it is on.
    pub transparency: Option<Arc<Transparency>>,
}

impl AppState {
    /// The state around a running message writer (see `startup`, which starts the tasks).
    pub fn new(
        config: Config,
        pool: Pool,
        metrics: Arc<Metrics>,
        remote: Option<Arc<Remote>>,
        inbox_waker: Arc<InboxWaker>,
        message_writer: MessageWriter,
    ) -> Self {
        let limits = &config.limits;
        Self {
            blobs: Arc::new(FsBlobStore::new(config.files.dir.clone())),
            login_failures: LoginThrottle::new(limits),
            password_hashes: PasswordHashes::default(),
            login_per_address: RateLimiter::per_minute(limits.login_attempts_per_address_per_minute),
            claims_per_account: RateLimiter::per_minute(limits.key_package_claims_per_account_per_minute),
            sends_per_device: RateLimiter::per_minute(limits.messages_per_device_per_minute),
            inbox_waker,
            message_writer,
            remote,
            config,
            pool,
            metrics,
            metrics_token: None,
            second_factor_key: None,
            transparency: None,
        }
    }

    /// With `/metrics` served to holders of this token.
    pub fn with_metrics_token(self, metrics_token: Option<TokenHash>) -> Self {
        Self { metrics_token, ..self }
    }

    /// With this key directory.
    pub fn with_transparency(self, transparency: Option<Arc<Transparency>>) -> Self {
        Self { transparency, ..self }
    }

    /// With TOTP secrets sealed by this key.
    pub fn with_second_factor_key(self, second_factor_key: Option<Arc<SealingKey>>) -> Self {
        Self {
            second_factor_key,
            ..self
        }
    }
}
