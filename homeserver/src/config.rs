//! Homeserver configuration: a TOML file whose every key can be overridden by a
//! `PARLEY_*` environment variable (`__` separates nesting levels, e.g.
//! `PARLEY_DATABASE__URL`, `PARLEY_LIMITS__MAX_BODY_BYTES`).
//!
//! The prefix is shared with other programs (the `parley` CLI's `PARLEY_PASSPHRASE_FILE`,
//! `PARLEY_PROFILE`, …; the compose file's `PARLEY_DB_PASSWORD`), often set in the same
//! shell: a variable is this server's only when it names one of the file's top-level keys
//! ([`TOP_LEVEL_KEYS`]) or uses `__` nesting, which only this server's do. Those are
//! checked strictly, so a mistyped setting stops the start; the others are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use parley_specs::ServerName;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "PARLEY_";

/// The top-level keys of [`Config`]: the first part of every variable that configures it.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "server_name",
    "listen",
    "tls",
    "database",
    "registration",
    "limits",
    "log",
    "federation",
    "admin",
    "metrics",
    "retention",
    "files",
    "second_factor",
    "key_backup",
    "transparency",
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The domain this server owns accounts for: user ids are `name@server_name`.
    pub server_name: ServerName,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub registration: RegistrationConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// The federation API; absent, this server talks to no other.
    #[serde(default)]
    pub federation: Option<FederationConfig>,
    /// The operator's admin API; absent, there is none.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Who may read `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// How long what only grows is kept (see `retention`).
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Encrypted files: where their ciphertext is stored, and how much of it.
    #[serde(default)]
    pub files: FilesConfig,
    /// Where the key sealing TOTP secrets lives (see `second_factor`).
    #[serde(default)]
    pub second_factor: SecondFactorConfig,
    /// The end-to-end encrypted key backups the accounts' devices keep here.
    #[serde(default)]
    pub key_backup: KeyBackupConfig,
    /// Key transparency: this server's auditable key directory, and its audits of the
    /// servers it federates with (see `transparency`). Needs `[federation]`.
    #[serde(default)]
    pub transparency: TransparencyConfig,
}

/// Key transparency: every change to a user's devices is published in an epoch of this
/// server's key directory, whose root is signed with the federation key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransparencyConfig {
    /// Off (or without `[federation]`), no directory is kept and device lists carry no
    /// proofs; clients of other servers then refuse this server's users' devices.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The directory's VRF private key (32 bytes), created (mode 0600) on first start if
    /// missing. Unset: `transparency-vrf.key` beside `[federation] signing_key`. It must
    /// never change for a directory (every label derives from it): back it up with the
    /// signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf_key_file: Option<PathBuf>,
    /// How often changed device lists are published as a new epoch, in milliseconds
    /// (nothing is published when nothing changed). A new device can be added to
    /// conversations by other users once published.
    #[serde(default = "default_epoch_interval_ms")]
    pub epoch_interval_ms: u64,
    /// How often the servers this one federates with are audited, in seconds (they are
    /// also audited on demand when a device list of theirs needs a newer epoch).
    #[serde(default = "default_audit_interval_secs")]
    pub audit_interval_secs: u64,
}

impl Default for TransparencyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            vrf_key_file: None,
            epoch_interval_ms: default_epoch_interval_ms(),
            audit_interval_secs: default_audit_interval_secs(),
        }
    }
}

fn default_epoch_interval_ms() -> u64 {
    2_000
}
fn default_audit_interval_secs() -> u64 {
    60
}

/// Encrypted files (blobs): devices upload ciphertext only; see `files.rs`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory of the filesystem blob store (created when missing; owner-only).
    #[serde(default = "default_files_dir")]
    pub dir: PathBuf,
    /// Largest file a user may upload, in bytes: 100 MiB by default. Its ciphertext may
    /// be larger by the encryption's overhead (at most `max_file_bytes / 1024 + 64`
    /// bytes more: 16 bytes per chunk of at least 16 KiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Bytes of blobs (uploaded or being uploaded) each user of this server may hold.
    #[serde(default = "default_user_quota_bytes")]
    pub user_quota_bytes: u64,
    /// An upload not completed this long after it started is deleted, in seconds.
    #[serde(default = "default_incomplete_upload_max_age")]
    pub incomplete_upload_max_age_secs: u64,
    /// Every blob is deleted this long after its upload, in seconds, whatever its
    /// message's timer (0: never by age). Expiring messages' blobs go when they expire.
    #[serde(default = "default_blob_max_age")]
    pub max_age_secs: u64,
    /// How often expired, old and abandoned blobs are looked for, in seconds.
    #[serde(default = "default_blob_sweep_secs")]
    pub sweep_interval_secs: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: default_files_dir(),
            max_file_bytes: default_max_file_bytes(),
            user_quota_bytes: default_user_quota_bytes(),
            incomplete_upload_max_age_secs: default_incomplete_upload_max_age(),
            max_age_secs: default_blob_max_age(),
            sweep_interval_secs: default_blob_sweep_secs(),
        }
    }
}

/// The second factor's key file: outside the database, so that a dump of it alone does
/// not reveal TOTP secrets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorConfig {
    /// false: no key file is read or created and accounts cannot enrol (for deployments
    /// that cannot give every process the same file, e.g. the Helm chart without its
    /// Secret). Accounts enrolled earlier then log in with recovery codes only.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The 32-byte key that seals TOTP secrets, created (mode 0600) on first start if
    /// missing. Unset: `second-factor.key` beside `[federation] signing_key`; with neither,
    /// accounts cannot enrol a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl Default for SecondFactorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_file: None,
        }
    }
}

/// Each account may keep an encrypted backup of its history here (opaque chunks that
/// only its devices can read); these bound what one account may store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBackupConfig {
    /// Off, the key backup endpoints answer `404 not_found` and store nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Bytes one account's chunks may take in all; past it, `507 quota_exceeded`.
    #[serde(default = "default_backup_quota")]
    pub quota_bytes: u64,
    /// Bytes of one chunk, at most; larger uploads get `413 payload_too_large`.
    #[serde(default = "default_backup_max_chunk")]
    pub max_chunk_bytes: usize,
}

impl Default for KeyBackupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            quota_bytes: default_backup_quota(),
            max_chunk_bytes: default_backup_max_chunk(),
        }
    }
}

fn default_backup_quota() -> u64 {
    256 * 1024 * 1024
}

fn default_backup_max_chunk() -> usize {
    4 * 1024 * 1024
}

fn default_files_dir() -> PathBuf {
    PathBuf::from("/var/lib/parley/blobs")
}
fn default_max_file_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_user_quota_bytes() -> u64 {
    1024 * 1024 * 1024
}
fn default_incomplete_upload_max_age() -> u64 {
    24 * 3600
}
fn default_blob_max_age() -> u64 {
    90 * 24 * 3600
}
fn default_blob_sweep_secs() -> u64 {
    5
}

impl Config {
    /// The key directory's VRF key file in effect, when transparency is on (see
    /// [`TransparencyConfig`]).
    pub fn transparency_vrf_key_file(&self) -> Option<PathBuf> {
        if !self.transparency.enabled {
            return None;
        }
        let federation = self.federation.as_ref()?;
        Some(
            self.transparency
                .vrf_key_file
                .clone()
                .unwrap_or_else(|| federation.signing_key.with_file_name("transparency-vrf.key")),
        )
    }

    /// The second factor's key file in effect (see [`SecondFactorConfig`]).
    pub fn second_factor_key_file(&self) -> Option<PathBuf> {
        if !self.second_factor.enabled {
            return None;
        }
        self.second_factor.key_file.clone().or_else(|| {
            self.federation
                .as_ref()
                .map(|f| f.signing_key.with_file_name("second-factor.key"))
        })
    }
}

/// `/metrics` is served on the client port, which faces the network, so it needs a token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A file holding the bearer token a scraper must send (`Authorization: Bearer
    /// <token>`; at least 32 visible ASCII characters, readable by its owner only). Unset,
    /// `/metrics` answers 404 to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// What the retention sweeper deletes, and how fast. Every age is in seconds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Off, nothing is swept (disappearing messages and replay records still expire).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often a sweep pass starts, in seconds. One process of a domain sweeps at a time.
    #[serde(default = "default_retention_sweep_secs")]
    pub sweep_interval_secs: u64,
    /// Rows deleted per statement: each batch is its own short transaction.
    #[serde(default = "default_retention_batch")]
    pub batch_size: i64,
    /// Pause between two batches, in milliseconds, to leave the database to the traffic.
    #[serde(default = "default_retention_pause_ms")]
    pub batch_pause_ms: u64,
    /// A message is kept at least this long, even once every device and member server
    /// has it: retried submits stay recognised and late delivery receipts find it.
    #[serde(default = "default_message_min_age")]
    pub message_min_age_secs: u64,
    /// A message is deleted after this long even if a member server never acknowledged
    /// it or a device never read it (those devices are told they missed messages).
    #[serde(default = "default_message_max_age")]
    pub message_max_age_secs: u64,
    /// Inbox entries of a device not seen for this long are dropped; it is told it missed
    /// messages when it returns.
    #[serde(default = "default_device_idle_max_age")]
    pub device_idle_max_age_secs: u64,
    /// Delivery receipts waiting in an inbox are dropped once their message is this old.
    #[serde(default = "default_receipt_max_age")]
    pub receipt_max_age_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sweep_interval_secs: default_retention_sweep_secs(),
            batch_size: default_retention_batch(),
            batch_pause_ms: default_retention_pause_ms(),
            message_min_age_secs: default_message_min_age(),
            message_max_age_secs: default_message_max_age(),
            device_idle_max_age_secs: default_device_idle_max_age(),
            receipt_max_age_secs: default_receipt_max_age(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_retention_sweep_secs() -> u64 {
    60
}
fn default_retention_batch() -> i64 {
    1000
}
fn default_retention_pause_ms() -> u64 {
    10
}
fn default_message_min_age() -> u64 {
    3600
}
fn default_message_max_age() -> u64 {
    90 * 24 * 3600
}
fn default_device_idle_max_age() -> u64 {
    30 * 24 * 3600
}
fn default_receipt_max_age() -> u64 {
    7 * 24 * 3600
}

/// The admin API listens on its own address, never on the client listener. On a loopback
/// address it speaks plain HTTP; on any other it is served over HTTPS with the `[tls]`
/// certificate.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// A file holding the admin bearer token (at least 32 visible ASCII characters),
    /// readable by its owner only; the server keeps only its SHA-256.
    pub token_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Address of the federation API, served over mutual TLS only. Port 0 picks a free port.
    #[serde(default = "default_federation_listen")]
    pub listen: SocketAddr,
    /// This server's ed25519 signing key file; created (mode 0600) on first start if missing.
    pub signing_key: PathBuf,
    /// PEM CA bundle that other servers' client certificates must chain to. Unset: the
    /// system's WebPKI roots.
    #[serde(default)]
    pub trust_roots: Option<PathBuf>,
    /// How long other servers may cache this server's key document.
    #[serde(default = "default_key_document_validity_secs")]
    pub key_document_validity_secs: u64,
    /// Addresses of other servers' federation APIs, by server name (IP:port). A server
    /// not listed is found through `https://<name>/.well-known/parley/server`, else at
    /// its name on port 8448.
    #[serde(default)]
    pub peers: BTreeMap<ServerName, SocketAddr>,
    /// `host[:port]` of this server's federation API as other servers should reach it,
    /// served at `/.well-known/parley/server` on the client listener, for when that
    /// listener answers `https://<server_name>/`. Unset: that path answers 404.
    #[serde(default)]
    pub well_known_server: Option<String>,
    /// Whether servers found by name (not in `peers`) may have non-public addresses:
    /// loopback, private, link-local. Off, a server name that is an IP address or that
    /// resolves only to such addresses is refused without being dialled, so users cannot
    /// make this server probe its own network by naming `x@10.0.0.5:22`. Turn it on for
    /// a federation on a private network that uses well-known discovery.
    #[serde(default)]
    pub reach_private_addresses: bool,
    /// When set, the only servers this one federates with. Lists edited through the
    /// admin API replace both lists (see `federation::policy`).
    #[serde(default)]
    pub allow: Option<BTreeSet<ServerName>>,
    /// Servers this one never federates with.
    #[serde(default)]
    pub deny: BTreeSet<ServerName>,
    /// Authenticated requests one other server may make per minute; beyond: 429.
    #[serde(default = "default_requests_per_origin")]
    pub requests_per_origin_per_minute: u32,
    /// Questions one user's devices may have this server put to other servers' hubs per
    /// minute (how far a group was delivered, a group's GroupInfo): they spend this
    /// server's `requests_per_origin_per_minute` at those hubs, which one user must not
    /// use up. Beyond: 429.
    #[serde(default = "default_hub_questions_per_user")]
    pub hub_questions_per_user_per_minute: u32,
    /// Messages in one transaction to another server, at most; larger ones are refused (413).
    #[serde(default = "default_max_transaction_messages")]
    pub max_transaction_messages: usize,
    /// Bytes of one transaction (its JSON body), at most; larger ones are refused (413).
    #[serde(default = "default_max_transaction_bytes")]
    pub max_transaction_bytes: usize,
    /// After a failed send to a server, the first retry waits about this long; each
    /// further failure doubles the wait (with random jitter) up to `retry_max_secs`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Address of the HTTPS client API (and /health, /ready, /metrics). Port 0 picks a free port.
    pub client: SocketAddr,
    /// Worker threads serving HTTP; 0 means one per CPU core.
    #[serde(default)]
    pub workers: usize,
    /// Reverse proxies or load balancers in front of this server (addresses or ranges,
    /// e.g. `10.0.0.0/8`). A request whose TCP peer is one of them comes from the address
    /// its `X-Forwarded-For` names: the rightmost entry that is not itself one of them.
    /// Empty (the default): the TCP peer is the client and the header is ignored, so no
    /// client can pick its own address for the per-address limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A libpq-style URL, e.g. `postgres://parley@127.0.0.1:5432/parley`; TLS with its
    /// `sslmode` and `sslrootcert` options (see `pg_tls`).
    pub url: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a request waits for a free connection before answering 503.
    #[serde(default = "default_pool_timeout_ms")]
    pub pool_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When set, registration requires this token.
    #[serde(default)]
    pub invite_token: Option<String>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            invite_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Failed logins (and password changes) of one account from one client network (an
    /// IPv4 address, an IPv6 /64) per minute; beyond, that network waits. Successes cost
    /// nothing. Formerly `login_attempts_per_account_per_minute`, still accepted.
    #[serde(
        default = "default_login_failures_per_account_and_address",
        alias = "login_attempts_per_account_per_minute"
    )]
    pub login_failures_per_account_and_address_per_minute: u32,
    /// Failed logins of one account from all networks per hour (a burst of this many,
    /// refilled over the hour). Once spent, networks that failed for the account within
    /// the last hour wait for it; a network that has not failed is never refused by it.
    #[serde(default = "default_login_failures_per_account")]
    pub login_failures_per_account_per_hour: u32,
    /// Login and registration attempts (right or wrong) allowed per client IP address per
    /// minute: the password hashing one address can cause.
    #[serde(default = "default_login_per_address")]
    pub login_attempts_per_address_per_minute: u32,
    /// Key package claims (one per user added to a group) allowed per account per minute.
    #[serde(default = "default_claims_per_account")]
    pub key_package_claims_per_account_per_minute: u32,
    /// One-time KeyPackages of one device that one claimer (a user of this server, or
    /// another server claiming for its users) gets per hour; beyond it, the device's
    /// last-resort package. So nobody can drain a device's supply.
    #[serde(default = "default_one_time_claims_per_claimer")]
    pub one_time_key_packages_per_claimer_and_device_per_hour: u32,
    /// One-time KeyPackages of one device that all claimers together get per hour;
    /// beyond it, the device's last-resort package.
    #[serde(default = "default_one_time_claims_per_device")]
    pub one_time_key_packages_per_device_per_hour: u32,
    /// Messages and commits one device may submit per minute.
    #[serde(default = "default_messages_per_device")]
    pub messages_per_device_per_minute: u32,
    /// Largest MLS message, Welcome or GroupInfo accepted, in bytes (after base64 decoding).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most member devices a group may have.
    #[serde(default = "default_max_group_size")]
    pub max_group_size: usize,
    /// Application messages are accepted for the current epoch and this many before it.
    #[serde(default = "default_past_epochs")]
    pub past_epochs_accepted: u64,
    /// How often expired (disappearing) messages are deleted, in seconds.
    #[serde(default = "default_expiry_sweep_secs")]
    pub expiry_sweep_interval_secs: u64,
    /// How often each process checks, in one query for all its waiting inbox readers
    /// (long-polls and WebSockets), whether any of their devices has entries a lost
    /// cross-process wake-up did not announce, in seconds: the longest such a loss delays
    /// a delivery. Waiting readers themselves never poll the database.
    #[serde(default = "default_inbox_recheck_secs")]
    pub inbox_recheck_secs: u64,
    /// How often the database-wide gauges of `/metrics` (accounts, inbox depth, federation
    /// queues) are read from PostgreSQL, in seconds. Scrapes never query the database.
    #[serde(default = "default_database_gauges_secs")]
    pub database_gauges_secs: u64,
    /// Inbox WebSockets one device may hold open on one process; past it, `429`.
    #[serde(default = "default_streams_per_device")]
    pub inbox_streams_per_device: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            login_failures_per_account_and_address_per_minute: default_login_failures_per_account_and_address(),
            login_failures_per_account_per_hour: default_login_failures_per_account(),
            login_attempts_per_address_per_minute: default_login_per_address(),
            key_package_claims_per_account_per_minute: default_claims_per_account(),
            one_time_key_packages_per_claimer_and_device_per_hour: default_one_time_claims_per_claimer(),
            one_time_key_packages_per_device_per_hour: default_one_time_claims_per_device(),
            messages_per_device_per_minute: default_messages_per_device(),
            max_message_bytes: default_max_message_bytes(),
            max_group_size: default_max_group_size(),
            past_epochs_accepted: default_past_epochs(),
            expiry_sweep_interval_secs: default_expiry_sweep_secs(),
            inbox_recheck_secs: default_inbox_recheck_secs(),
            database_gauges_secs: default_database_gauges_secs(),
            inbox_streams_per_device: default_streams_per_device(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `parley_homeserver=debug,info`. `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_federation_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8448))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8449))
}

fn default_key_document_validity_secs() -> u64 {
    7 * 24 * 3600
}

fn default_hub_questions_per_user() -> u32 {
    600
}
fn default_requests_per_origin() -> u32 {
    60_000
}

fn default_max_transaction_messages() -> usize {
    200
}

fn default_max_transaction_bytes() -> usize {
    8 * 1024 * 1024
}

fn default_retry_initial_ms() -> u64 {
    1_000
}

fn default_retry_max_secs() -> u64 {
    600
}

fn yes() -> bool {
    true
}
fn default_pool_size() -> usize {
    16
}
fn default_pool_timeout_ms() -> u64 {
    5_000
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_login_failures_per_account_and_address() -> u32 {
    10
}
fn default_login_failures_per_account() -> u32 {
    100
}
fn default_login_per_address() -> u32 {
    30
}
fn default_claims_per_account() -> u32 {
    600
}
fn default_one_time_claims_per_claimer() -> u32 {
    5
}
fn default_one_time_claims_per_device() -> u32 {
    30
}
fn default_messages_per_device() -> u32 {
    6_000
}
fn default_max_message_bytes() -> usize {
    48 * 1024
}
fn default_max_group_size() -> usize {
    1_000
}
fn default_past_epochs() -> u64 {
    3
}
fn default_streams_per_device() -> usize {
    8
}
fn default_database_gauges_secs() -> u64 {
    15
}
fn default_inbox_recheck_secs() -> u64 {
    10
}
fn default_expiry_sweep_secs() -> u64 {
    10
}
fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error(
        "environment variable {name} does not name a config key (expected e.g. PARLEY_DATABASE__URL; sections: {})",
        TOP_LEVEL_KEYS.join(", ")
    )]
    BadEnvKey { name: String },
    #[error("invalid configuration: {0}")]
    Invalid(toml::de::Error),
}

impl Config {
    /// Reads `path`, then applies `PARLEY_*` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        Self::from_table(table, std::env::vars())
    }

    pub fn from_table(
        mut table: toml::Table,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
            let names_a_section = path
                .first()
                .is_some_and(|first| TOP_LEVEL_KEYS.contains(&first.as_str()));
            if !names_a_section && path.len() == 1 {
                // Another program's variable (see the module documentation).
                continue;
            }
            if !names_a_section || path.iter().any(String::is_empty) {
                return Err(ConfigError::BadEnvKey { name });
            }
            set_path(&mut table, &path, env_value(&value));
        }
        toml::Value::Table(table).try_into().map_err(ConfigError::Invalid)
    }
}

/// An environment value is read as a TOML scalar when it is one (`8080`, `true`),
/// otherwise as a string, so `PARLEY_DATABASE__URL=postgres://…` needs no quotes.
fn env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/homeserver.example.toml");

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().expect("toml");
        Config::from_table(table, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn example_config_is_valid() {
        let config = parse(EXAMPLE, &[]).expect("example parses");
        assert_eq!(config.server_name.as_str(), "chat.example.org");
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let config = parse(
            EXAMPLE,
            &[
                ("PARLEY_DATABASE__URL", "postgres://x@127.0.0.1:1/db"),
                ("PARLEY_LIMITS__MAX_BODY_BYTES", "1234"),
                ("PARLEY_REGISTRATION__ENABLED", "false"),
                ("PARLEY_SERVER_NAME", "b.example"),
                ("PARLEY_PROFILE", "ignored"),
                ("OTHER", "ignored"),
            ],
        )
        .expect("parses");
        assert_eq!(config.database.url, "postgres://x@127.0.0.1:1/db");
        assert_eq!(config.limits.max_body_bytes, 1234);
        assert!(!config.registration.enabled);
        assert_eq!(config.server_name.as_str(), "b.example");
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(matches!(
            parse(EXAMPLE, &[("PARLEY_SERVER_NAME", "not a name")]),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse(EXAMPLE, &[("PARLEY_LIMITS__NO_SUCH_KEY", "1")]),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse(EXAMPLE, &[("PARLEY_LIMTS__MAX_BODY_BYTES", "1")]),
            Err(ConfigError::BadEnvKey { .. })
        ));
        assert!(matches!(
            parse(EXAMPLE, &[("PARLEY_A____B", "1")]),
            Err(ConfigError::BadEnvKey { .. })
        ));
        assert!(matches!(
            parse(EXAMPLE, &[("PARLEY_LIMITS____MAX_BODY_BYTES", "1")]),
            Err(ConfigError::BadEnvKey { .. })
        ));
    }

    #[test]
    fn the_former_name_of_the_login_limit_is_still_read() {
        let config = parse(
            &EXAMPLE.replace(
                "login_failures_per_account_and_address_per_minute = 10",
                "login_attempts_per_account_per_minute = 7",
            ),
            &[],
        )
        .expect("parses");
        assert_eq!(config.limits.login_failures_per_account_and_address_per_minute, 7);
    }

    #[test]
    fn other_programs_variables_are_not_settings() {
        let config = parse(
            EXAMPLE,
            &[
                ("PARLEY_PASSPHRASE_FILE", "/home/me/.parley/pass"),
                ("PARLEY_PROFILE", "work"),
                ("PARLEY_HOME", "/home/me/.parley"),
                ("PARLEY_SERVER", "https://chat.example.org"),
                ("PARLEY_CA_FILE", "/etc/ca.pem"),
                ("PARLEY_CONFIG", "/etc/parley.toml"),
                ("PARLEY_DB_PASSWORD", "secret"),
                ("PARLEY_NO_SUCH_KEY", "1"),
                ("PARLEY_", "1"),
            ],
        )
        .expect("parses");
        assert_eq!(config.server_name.as_str(), "chat.example.org");
    }

    #[test]
    fn the_top_level_keys_are_the_configs() {
        let mut config = parse(EXAMPLE, &[]).expect("example parses");
        config.admin = Some(AdminConfig {
            listen: default_admin_listen(),
            token_file: "/etc/parley/admin-token".into(),
        });
        assert!(config.federation.is_some(), "the example federates");
        let table = toml::Table::try_from(&config).expect("serializes");
        let keys: BTreeSet<&str> = table.keys().map(String::as_str).collect();
        assert_eq!(keys, TOP_LEVEL_KEYS.iter().copied().collect());
    }
}
