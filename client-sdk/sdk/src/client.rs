//! The typed client of a homeserver's client API.

use std::fmt;
use std::time::Duration;

use parley_specs::client_api::{
    ChangePasswordRequest, DeviceInfo, DeviceList, HealthResponse, LoginRequest, LoginResponse, ReadyResponse,
    RegisterRequest, RenameDeviceRequest, SecondFactorConfirmRequest, SecondFactorDisableRequest,
    SecondFactorEnrollment, SecondFactorRecoveryCodes, SecondFactorStatus, WhoAmIResponse,
};
use parley_specs::endpoints::{Auth, Endpoint, Method, client, ops};
use parley_specs::files_api::{CreateUploadRequest, UploadState};
use parley_specs::groups_api::{
    Accepted, AckRequest, CreateGroupRequest, GroupDelivery, GroupInfoResponse, GroupList, GroupSummary, InboxPage,
    InboxQuery, SubmitCommitRequest, SubmitMessageRequest,
};
use parley_specs::key_backup_api::{ChunkList, PutChunkResponse, VERSION_HEADER};
use parley_specs::keys_api::{
    ClaimKeyPackagesRequest, ClaimKeyPackagesResponse, KeyPackageCount, UploadKeyPackagesRequest, UserDevices,
};
use parley_specs::transparency_api::TransparencyHistory;
use parley_specs::{DeviceId, GroupId, UserId};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::Error;
use crate::error::parse_retry_after;
use crate::stream::InboxStream;
use crate::tls::{Trust, client_config};

/// Default time allowed to open a connection (TCP and TLS handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for a whole request, from sending to the end of the response body.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Responses larger than this are refused (as [`Error::Decode`]) instead of buffered.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// A `Retry-After` shorter than this is waited this long (no busy loop on `0`).
const MIN_RETRY_WAIT: Duration = Duration::from_millis(100);

/// How a [`Client`] repeats a request that the server answered with `503` and a
/// `Retry-After` (`database_unavailable` during a database failover, `unavailable` while
/// it sheds load), waiting as the server asks.
///
/// Only requests that are safe to repeat are retried: every `GET`, and the submits of
/// commits and messages, whose `txn_id` makes the hub answer a repeat with what the first
/// one got instead of storing it twice; acknowledgements, KeyPackage uploads and device
/// renames, which are idempotent. Registration, login, claims and the other `POST`s are
/// never repeated by the SDK (the first attempt may have taken effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; `1` never retries.
    pub max_attempts: u32,
    /// No retry is made whose wait would end later than this after the first attempt
    /// began: the error is returned instead.
    pub max_total: Duration,
}

impl RetryPolicy {
    /// Never retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        max_total: Duration::ZERO,
    };
}

/// The default: up to 20 attempts within 30 s, enough to ride out a PostgreSQL failover
/// (Patroni's default `ttl` is 30 s; promotion usually takes well under that).
pub const DEFAULT_RETRY_POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 20,
    max_total: Duration::from_secs(30),
};

/// Whether the SDK may send `endpoint` again after a `503` (see [`RetryPolicy`]).
pub fn retry_safe(endpoint: Endpoint) -> bool {
    endpoint.method == Method::Get
        || [
            client::SUBMIT_MESSAGE,
            client::SUBMIT_COMMIT,
            client::ACK_INBOX,
            client::UPLOAD_KEY_PACKAGES,
            client::RENAME_DEVICE,
        ]
        .contains(&endpoint)
}

/// A connection to one homeserver's client API, optionally acting as one logged-in device.
///
/// Every request is built from the endpoint declarations of
/// [`parley_specs::endpoints`]; endpoints that need a device's access token get
/// `Authorization: Bearer …`, the others never do.
///
/// Cheap to clone: clones share the connection pool (HTTP/2 when the server offers it).
/// The access token is never shown by `Debug`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// For the inbox WebSocket, which needs HTTP/1.1 (no h2 in ALPN).
    websocket_tls: std::sync::Arc<rustls::ClientConfig>,
    /// The per-request timeout; a long-poll adds its own wait to it.
    timeout: Duration,
    retry: RetryPolicy,
    base: Url,
    access_token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base.as_str())
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]: timeouts and an initial access token.
pub struct ClientBuilder {
    base_url: Url,
    trust: Trust,
    connect_timeout: Duration,
    timeout: Duration,
    retry: RetryPolicy,
    access_token: Option<String>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url.as_str())
            .field("trust", &self.trust)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ClientBuilder {
    /// Time allowed to open a connection, TLS handshake included
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How requests answered `503` with `Retry-After` are repeated
    /// (default [`DEFAULT_RETRY_POLICY`]; [`RetryPolicy::NONE`] turns it off).
    pub fn retry_unavailable(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Starts logged in with `token` (e.g. one saved from an earlier [`Client::login`]).
    pub fn access_token(mut self, token: impl Into<String>) -> Self {
        self.access_token = Some(token.into());
        self
    }

    /// Builds the client: checks the URL and loads the trusted CA certificates.
    ///
    /// Fails with [`Error::InvalidUrl`] for a URL that is not `https://host[:port][/prefix]`,
    /// [`Error::InvalidCaFile`] for an unreadable or empty CA file, and [`Error::Tls`]
    /// when no trust roots can be set up.
    pub fn build(self) -> Result<Client, Error> {
        let base = checked_base_url(self.base_url)?;
        let tls = client_config(&self.trust)?;
        let mut websocket_tls = tls.clone();
        websocket_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(concat!("parley-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Tls(chain(&e)))?;
        Ok(Client {
            http,
            websocket_tls: std::sync::Arc::new(websocket_tls),
            timeout: self.timeout,
            retry: self.retry,
            base,
            access_token: self.access_token,
        })
    }
}

impl Client {
    /// A client for the homeserver at `base_url` (e.g. `https://chat.example.org`, or
    /// `https://example.org/parley` behind a reverse proxy), not logged in, with default
    /// timeouts. See [`ClientBuilder::build`] for the errors.
    pub fn new(base_url: Url, trust: Trust) -> Result<Self, Error> {
        Self::builder(base_url, trust).build()
    }

    /// A builder, for non-default timeouts or a saved access token.
    pub fn builder(base_url: Url, trust: Trust) -> ClientBuilder {
        ClientBuilder {
            base_url,
            trust,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: DEFAULT_RETRY_POLICY,
            access_token: None,
        }
    }

    /// The same client, acting as the device that owns `token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.set_access_token(token);
        self
    }

    /// Same as [`Client::with_token`].
    pub fn with_access_token(self, token: impl Into<String>) -> Self {
        self.with_token(token)
    }

    /// Acts from now on as the device that owns `token`.
    pub fn set_access_token(&mut self, token: impl Into<String>) {
        self.access_token = Some(token.into());
    }

    /// Acts from now on as the device that `session` (from [`Client::register`] or
    /// [`Client::login`]) logged in.
    pub fn set_session(&mut self, session: &LoginResponse) {
        self.set_access_token(session.access_token.clone());
    }

    /// Forgets the access token; calls that need one then fail with [`Error::NotLoggedIn`].
    pub fn clear_access_token(&mut self) {
        self.access_token = None;
    }

    /// Whether the client has an access token (which the server may have revoked since).
    pub fn has_access_token(&self) -> bool {
        self.access_token.is_some()
    }

    /// The access token the client sends, if any. It is a secret: store it privately
    /// and never log it.
    pub fn access_token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    /// The homeserver's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Creates an account and logs in its first device.
    ///
    /// The client itself stays as it was; call [`Client::set_session`] with the result to
    /// act as the new device. Refusals: `invalid_username`, `weak_password`,
    /// `username_taken`, `registration_closed`, `invalid_invite_token`, `rate_limited`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<LoginResponse, Error> {
        self.call(client::REGISTER, &[], Some(req)).await
    }

    /// Logs in a new device of an existing account (`invalid_credentials` when the
    /// username or password is wrong). Like [`Client::register`], it does not change the
    /// client's own token.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse, Error> {
        self.call(client::LOGIN, &[], Some(req)).await
    }

    /// Logs out this device: the server deletes it and revokes its token.
    pub async fn logout(&self) -> Result<(), Error> {
        self.call_no_content(client::LOGOUT, &[], None::<&()>).await
    }

    /// Logs out every device of the account, this one included.
    pub async fn logout_all(&self) -> Result<(), Error> {
        self.call_no_content(client::LOGOUT_ALL, &[], None::<&()>).await
    }

    /// The account and device this client's token belongs to.
    pub async fn whoami(&self) -> Result<WhoAmIResponse, Error> {
        self.call(client::WHOAMI, &[], None::<&()>).await
    }

    /// Changes the account's password (`invalid_credentials` when the current one is
    /// wrong, `weak_password` for a bad new one). Every other device of the account is
    /// logged out; this one stays logged in.
    pub async fn change_password(&self, req: &ChangePasswordRequest) -> Result<(), Error> {
        self.call_no_content(client::CHANGE_PASSWORD, &[], Some(req)).await
    }

    /// The account's second factor: whether it is on, pending, and how many recovery
    /// codes are left.
    pub async fn second_factor_status(&self) -> Result<SecondFactorStatus, Error> {
        self.call(client::SECOND_FACTOR_STATUS, &[], None::<&()>).await
    }

    /// Starts enrolling a second factor (TOTP): the server makes a secret and returns it
    /// once (`second_factor_enabled` when one is on already). Confirm it with
    /// [`Client::confirm_second_factor`].
    pub async fn enroll_second_factor(&self) -> Result<SecondFactorEnrollment, Error> {
        self.call(client::SECOND_FACTOR_ENROLL, &[], None::<&()>).await
    }

    /// Confirms the pending enrolment with a current code; returns the 10 recovery codes,
    /// shown once (`invalid_second_factor` for a wrong code).
    pub async fn confirm_second_factor(&self, code: &str) -> Result<SecondFactorRecoveryCodes, Error> {
        let body = SecondFactorConfirmRequest { code: code.to_owned() };
        self.call(client::SECOND_FACTOR_CONFIRM, &[], Some(&body)).await
    }

    /// Turns the second factor off: needs the password and a current code or an unused
    /// recovery code.
    pub async fn disable_second_factor(&self, req: &SecondFactorDisableRequest) -> Result<(), Error> {
        self.call_no_content(client::SECOND_FACTOR_DISABLE, &[], Some(req))
            .await
    }

    /// The account's devices; the one making the request has `current == true`.
    pub async fn devices(&self) -> Result<DeviceList, Error> {
        self.call(client::LIST_DEVICES, &[], None::<&()>).await
    }

    /// Sets a device's display name and returns the updated device
    /// (`not_found` when the account has no such device).
    pub async fn rename_device(&self, device: &DeviceId, display_name: &str) -> Result<DeviceInfo, Error> {
        let body = RenameDeviceRequest {
            display_name: display_name.to_owned(),
        };
        self.call(client::RENAME_DEVICE, &[device.as_str()], Some(&body)).await
    }

    /// Deletes a device of the account, this one too, revoking its token at once
    /// (`not_found` when the account has no such device).
    pub async fn delete_device(&self, device: &DeviceId) -> Result<(), Error> {
        self.call_no_content(client::DELETE_DEVICE, &[device.as_str()], None::<&()>)
            .await
    }

    /// Uploads MLS KeyPackages of this device (TLS-serialized, RFC 9420) and returns how
    /// many are now available. Uploads are idempotent; a last-resort package replaces the
    /// device's previous one. The whole batch is refused (`invalid_key_package`,
    /// `credential_mismatch`, `signature_key_mismatch`) when one package is bad: every
    /// package must carry the device's signature key, which its first upload binds.
    pub async fn upload_key_packages(&self, req: &UploadKeyPackagesRequest) -> Result<KeyPackageCount, Error> {
        self.call(client::UPLOAD_KEY_PACKAGES, &[], Some(req)).await
    }

    /// How many KeyPackages of this device wait to be claimed.
    pub async fn key_package_count(&self) -> Result<KeyPackageCount, Error> {
        self.call(client::KEY_PACKAGE_COUNT, &[], None::<&()>).await
    }

    /// Claims one KeyPackage for every device of a user (to add them to a group); each
    /// one-time package is handed out once. `not_found` for an unknown user.
    pub async fn claim_key_packages(&self, req: &ClaimKeyPackagesRequest) -> Result<ClaimKeyPackagesResponse, Error> {
        self.call(client::CLAIM_KEY_PACKAGES, &[], Some(req)).await
    }

    /// The device key directory: the devices of a user (of this server or another one)
    /// with their MLS signature keys, as the user's homeserver vouches for them, with
    /// that server's signature when it has one. `not_found` for an unknown user.
    pub async fn user_devices(&self, user: &UserId) -> Result<UserDevices, Error> {
        self.call(client::USER_DEVICES, &[user.as_str()], None::<&()>).await
    }

    /// The key-history proof of this account's own device lists from `since_version` on
    /// (key transparency); `not_found` when the server keeps no key directory.
    pub async fn transparency_history(&self, since_version: u64) -> Result<TransparencyHistory, Error> {
        let query = [("since_version", since_version.to_string())];
        self.call_with_query(client::TRANSPARENCY_HISTORY, &[], &query, None::<&()>)
            .await
    }

    /// Liveness: the server process answers.
    pub async fn health(&self) -> Result<HealthResponse, Error> {
        self.call(ops::HEALTH, &[], None::<&()>).await
    }

    /// Readiness: database reachable and schema current. A server that is not ready
    /// answers 503, which this returns as an [`Error::Api`].
    pub async fn ready(&self) -> Result<ReadyResponse, Error> {
        self.call(ops::READY, &[], None::<&()>).await
    }

    /// Registers a new MLS group hubbed on this server (see `CreateGroupRequest`).
    pub async fn create_group(&self, req: &CreateGroupRequest) -> Result<GroupSummary, Error> {
        self.call(client::CREATE_GROUP, &[], Some(req)).await
    }

    /// The groups this device is a member of.
    pub async fn list_groups(&self) -> Result<GroupList, Error> {
        self.call(client::LIST_GROUPS, &[], None::<&()>).await
    }

    /// The groups in which another device of this device's user is a member and this
    /// one is not: the ones it can join by itself (see [`Self::group_info`]).
    pub async fn list_joinable_groups(&self) -> Result<GroupList, Error> {
        let query = [("of", "user".to_owned())];
        self.call_with_query(client::LIST_GROUPS, &[], &query, None::<&()>)
            .await
    }

    /// The group's current GroupInfo and ratchet tree, from its hub: for a member device
    /// (joining from a Welcome without the tree) or any device of a user with a member
    /// device (joining by external commit).
    pub async fn group_info(&self, group: &GroupId) -> Result<GroupInfoResponse, Error> {
        self.call(client::GROUP_INFO, &[group.as_str()], None::<&()>).await
    }

    /// The hub's public view of a group this device is in.
    pub async fn get_group(&self, group: &GroupId) -> Result<GroupSummary, Error> {
        self.call(client::GET_GROUP, &[group.as_str()], None::<&()>).await
    }

    /// How far each server with members in the group has stored its messages (asked of
    /// the group's hub; `partial` when this device's server could not reach it).
    pub async fn group_delivery(&self, group: &GroupId) -> Result<GroupDelivery, Error> {
        self.call(client::GROUP_DELIVERY, &[group.as_str()], None::<&()>).await
    }

    /// Submits a commit (and the Welcome of the members it adds) to the group's hub. A
    /// commit for another epoch than the group's is refused with `wrong_epoch`, its body
    /// carrying the current epoch: process the missed messages and retry.
    pub async fn submit_commit(&self, group: &GroupId, req: &SubmitCommitRequest) -> Result<Accepted, Error> {
        self.call(client::SUBMIT_COMMIT, &[group.as_str()], Some(req)).await
    }

    /// This device's user leaves the group: the hub stops delivering it to their devices
    /// and takes no commit that keeps them (see `protocol.md`, "Leaving a group").
    pub async fn leave_group(&self, group: &GroupId) -> Result<parley_specs::groups_api::LeftGroup, Error> {
        self.call(client::LEAVE_GROUP, &[group.as_str()], None::<&()>).await
    }

    /// Submits an application message. Retrying with the same `txn_id` is safe.
    pub async fn submit_message(&self, group: &GroupId, req: &SubmitMessageRequest) -> Result<Accepted, Error> {
        self.call(client::SUBMIT_MESSAGE, &[group.as_str()], Some(req)).await
    }

    /// Reads this device's inbox; with `timeout_ms`, waits for an entry (long-poll).
    pub async fn read_inbox(&self, query: &InboxQuery) -> Result<InboxPage, Error> {
        let mut pairs = Vec::new();
        if let Some(after) = query.after {
            pairs.push(("after", after.to_string()));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(timeout) = query.timeout_ms {
            pairs.push(("timeout_ms", timeout.to_string()));
        }
        self.call_with_query(client::READ_INBOX, &[], &pairs, None::<&()>).await
    }

    /// Acknowledges (and so deletes) inbox entries up to `up_to`.
    pub async fn ack_inbox(&self, up_to: i64) -> Result<(), Error> {
        self.call_no_content(client::ACK_INBOX, &[], Some(&AckRequest { up_to }))
            .await
    }

    /// Opens the inbox WebSocket: entries after `after` are pushed as they arrive.
    pub async fn inbox_stream(&self, after: i64) -> Result<InboxStream, Error> {
        let token = self.access_token.as_deref().ok_or(Error::NotLoggedIn)?;
        let mut url = self.url_for(client::INBOX_STREAM, &[]);
        url.query_pairs_mut().append_pair("after", &after.to_string());
        let _ = url.set_scheme("wss");
        InboxStream::connect(&url, token, self.websocket_tls.clone()).await
    }

    /// Starts a resumable upload of an encrypted file's ciphertext.
    pub async fn create_upload(&self, req: &CreateUploadRequest) -> Result<UploadState, Error> {
        self.call(client::CREATE_UPLOAD, &[], Some(req)).await
    }

    /// Where an upload stands (the offset to continue from).
    pub async fn upload_state(&self, blob_id: &str) -> Result<UploadState, Error> {
        self.call(client::GET_UPLOAD, &[blob_id], None::<&()>).await
    }

    /// Appends `bytes` to the upload at `offset`, its current offset.
    pub async fn put_upload(&self, blob_id: &str, offset: u64, bytes: Vec<u8>) -> Result<UploadState, Error> {
        let timeout = self.timeout + Duration::from_secs(bytes.len() as u64 / (256 * 1024));
        let query = [("offset", offset.to_string())];
        let (url, response) = self
            .send_raw(client::PUT_UPLOAD, &[blob_id], &query, Some(bytes), timeout)
            .await?;
        let bytes = self.read_bounded(&url, response).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: format!("not the expected JSON: {e}"),
        })
    }

    /// Completes an upload whose every byte was sent.
    pub async fn complete_upload(&self, blob_id: &str) -> Result<UploadState, Error> {
        self.call(client::COMPLETE_UPLOAD, &[blob_id], None::<&()>).await
    }

    /// Deletes a blob this user uploaded.
    pub async fn delete_upload(&self, blob_id: &str) -> Result<(), Error> {
        self.call_no_content(client::DELETE_UPLOAD, &[blob_id], None::<&()>)
            .await
    }

    /// Opens a blob's download (through this server, which fetches it from `server`
    /// when it is another): the answer's body is the ciphertext, for the caller to read
    /// in pieces (`reqwest::Response::chunk`), within `timeout`.
    pub async fn download_blob(
        &self,
        server: &str,
        blob_id: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, Error> {
        self.send_raw(client::DOWNLOAD_BLOB, &[server, blob_id], &[], None, timeout)
            .await
            .map(|(_, response)| response)
    }

    /// The account's key backup chunks (ids, versions, sizes), its usage and limits.
    pub async fn list_backup_chunks(&self) -> Result<ChunkList, Error> {
        self.call(client::LIST_BACKUP_CHUNKS, &[], None::<&()>).await
    }

    /// Stores a key backup chunk if its stored version is `expected_version` (0: new);
    /// `backup_version_conflict` when another version is stored, `quota_exceeded` or
    /// `payload_too_large` past the server's limits.
    pub async fn put_backup_chunk(
        &self,
        chunk_id: &str,
        expected_version: i64,
        data: Vec<u8>,
    ) -> Result<PutChunkResponse, Error> {
        let query = [("expected_version", expected_version.to_string())];
        let (url, bytes, _) = self
            .send_raw_retried(client::PUT_BACKUP_CHUNK, &[chunk_id], &query, Some(data))
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: format!("not the expected JSON: {e}"),
        })
    }

    /// A key backup chunk's version and bytes (`not_found` when there is none).
    pub async fn get_backup_chunk(&self, chunk_id: &str) -> Result<(i64, Vec<u8>), Error> {
        let (url, bytes, version) = self
            .send_raw_retried(client::GET_BACKUP_CHUNK, &[chunk_id], &[], None)
            .await?;
        let version = version.ok_or_else(|| Error::Decode {
            url: url.to_string(),
            reason: format!("no {VERSION_HEADER} header"),
        })?;
        Ok((version, bytes))
    }

    /// Deletes the account's whole key backup.
    pub async fn delete_backup(&self) -> Result<(), Error> {
        self.call_no_content(client::DELETE_BACKUP, &[], None::<&()>).await
    }

    /// One request with a raw (`application/octet-stream`) body, its answer read whole; a
    /// `GET` is repeated after `503` with `Retry-After` as [`RetryPolicy`] allows. Returns
    /// the URL, the body and the key backup version header.
    async fn send_raw_retried(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(Url, Vec<u8>, Option<i64>), Error> {
        let started = tokio::time::Instant::now();
        let mut attempts = 1;
        loop {
            let err = match self.send_raw(endpoint, params, query, body.clone(), self.timeout).await {
                Ok((url, response)) => {
                    let version = response
                        .headers()
                        .get(VERSION_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    let bytes = self.read_bounded(&url, response).await?;
                    return Ok((url, bytes, version));
                }
                Err(err @ Error::Api { status: 503, .. }) => err,
                Err(other) => return Err(other),
            };
            let Some(wait) = err.retry_after() else {
                return Err(err);
            };
            let wait = wait.max(MIN_RETRY_WAIT);
            let in_budget = started.elapsed() + wait <= self.retry.max_total;
            if attempts >= self.retry.max_attempts || !in_budget || endpoint.method != Method::Get {
                return Err(err);
            }
            attempts += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// An answer's body, refused past [`MAX_RESPONSE_BYTES`].
    async fn read_bounded(&self, url: &Url, mut response: reqwest::Response) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::Decode {
                    url: url.to_string(),
                    reason: format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Sends one request with an optional `application/octet-stream` body and returns a
    /// successful answer with its body unread.
    async fn send_raw(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(Url, reqwest::Response), Error> {
        let mut url = self.url_for(endpoint, params);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let method = match endpoint.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let token = self.access_token.as_deref().ok_or(Error::NotLoggedIn)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::MalformedToken)?;
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(timeout)
            .header(AUTHORIZATION, auth);
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/octet-stream").body(body);
        }
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok((url, response));
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        Err(Error::from_response(status.as_u16(), retry_after, &bytes))
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<&B>,
    ) -> Result<R, Error> {
        self.call_with_query(endpoint, params, &[], body).await
    }

    async fn call_with_query<B: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<R, Error> {
        let (url, bytes) = self.send(endpoint, params, query, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: format!("not the expected JSON: {e}"),
        })
    }

    async fn call_no_content<B: Serialize>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<&B>,
    ) -> Result<(), Error> {
        self.send(endpoint, params, &[], body).await.map(drop)
    }

    /// The URL of `endpoint` on this server, under the base URL's path prefix.
    fn url_for(&self, endpoint: Endpoint, params: &[&str]) -> Url {
        let mut url = self.base.clone();
        let path = format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            endpoint.path_with(params)
        );
        url.set_path(&path);
        url
    }

    /// Sends a request, repeating it as the retry policy allows when the server answers
    /// `503` with `Retry-After`; returns its URL and the body of a successful response.
    async fn send<B: Serialize>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<(Url, Vec<u8>), Error> {
        let started = tokio::time::Instant::now();
        let mut attempts = 1;
        loop {
            let err = match self.send_once(endpoint, params, query, body).await {
                Err(err @ Error::Api { status: 503, .. }) => err,
                other => return other,
            };
            let Some(wait) = err.retry_after() else {
                return Err(err);
            };
            let wait = wait.max(MIN_RETRY_WAIT);
            let in_budget = started.elapsed() + wait <= self.retry.max_total;
            if attempts >= self.retry.max_attempts || !in_budget || !retry_safe(endpoint) {
                return Err(err);
            }
            attempts += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends one request; returns its URL and the body of a successful response.
    async fn send_once<B: Serialize>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<(Url, Vec<u8>), Error> {
        let mut url = self.url_for(endpoint, params);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        // A long-poll may legitimately wait for its whole timeout before answering.
        let waits_for = query
            .iter()
            .find(|(name, _)| *name == "timeout_ms")
            .and_then(|(_, ms)| ms.parse().ok())
            .map_or(Duration::ZERO, Duration::from_millis);
        let method = match endpoint.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(self.timeout + waits_for)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if endpoint.auth == Auth::AccessToken {
            let token = self.access_token.as_deref().ok_or(Error::NotLoggedIn)?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::MalformedToken)?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = self.read_bounded(&url, response).await?;
        if status.is_success() {
            Ok((url, bytes))
        } else {
            Err(Error::from_response(status.as_u16(), retry_after, &bytes))
        }
    }

    fn transport(&self, err: &reqwest::Error) -> Error {
        Error::Transport {
            url: self.base.as_str().trim_end_matches('/').to_owned(),
            reason: describe(err),
        }
    }
}

/// Accepts `https://host[:port][/prefix]`; drops a query or fragment.
fn checked_base_url(mut url: Url) -> Result<Url, Error> {
    if url.scheme() != "https" {
        return Err(Error::InvalidUrl(format!(
            "{url}: the homeserver must be reached over https://"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl(format!("{url}: no host name")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidUrl(
            "the server URL must not contain a user name or password".into(),
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// A short reason for a failed request: reqwest's own message is "error sending request
/// for url (…)", and what actually happened is at the bottom of its cause chain.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let mut io_kind = None;
    let mut innermost: &(dyn std::error::Error + 'static) = err;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return format!("TLS: {tls}");
        }
        let io = e.downcast_ref::<std::io::Error>();
        io_kind = io_kind.or(io.and_then(|io| io_reason(io.kind())));
        innermost = e;
        // An io::Error's `source` skips the error it wraps; `get_ref` returns it.
        current = match io.and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    io_kind.map_or_else(|| innermost.to_string(), str::to_owned)
}

fn io_reason(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    Some(match kind {
        ConnectionRefused => "connection refused",
        ConnectionReset => "connection reset by the server",
        ConnectionAborted => "connection aborted",
        TimedOut => "timed out",
        HostUnreachable => "host unreachable",
        NetworkUnreachable => "network unreachable",
        AddrNotAvailable => "address not available",
        UnexpectedEof => "the server closed the connection",
        _ => return None,
    })
}

/// The whole cause chain of an error, for setup errors where every layer matters.
fn chain(err: &dyn std::error::Error) -> String {
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

    fn client(base: &str) -> Result<Client, Error> {
        let url = Url::parse(base)?;
        Client::new(url, Trust::CaPem(test_ca()))
    }

    /// A CA certificate in PEM, good enough to build a client (never used to connect).
    fn test_ca() -> Vec<u8> {
        include_bytes!("../testdata/ca.pem").to_vec()
    }

    #[test]
    fn urls_come_from_the_endpoint_declarations() -> Result<(), Error> {
        let c = client("https://chat.example.org")?;
        assert_eq!(
            c.url_for(client::LOGIN, &[]).as_str(),
            "https://chat.example.org/client/v1/login"
        );
        let c = client("https://example.org/parley/?q=1#f")?;
        assert_eq!(c.base_url().as_str(), "https://example.org/parley/");
        assert_eq!(
            c.url_for(client::DELETE_DEVICE, &["AB/../C"]).as_str(),
            "https://example.org/parley/client/v1/devices/AB%2F..%2FC"
        );
        assert_eq!(
            c.url_for(ops::HEALTH, &[]).as_str(),
            "https://example.org/parley/health"
        );
        Ok(())
    }

    #[test]
    fn only_https_urls_are_accepted() {
        for bad in ["http://chat.example.org", "https://user:pw@chat.example.org"] {
            assert!(matches!(client(bad), Err(Error::InvalidUrl(_))), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_token() -> Result<(), Error> {
        let c = client("https://chat.example.org")?.with_token("pat_very_secret");
        assert!(c.has_access_token());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pat_very_secret") && shown.contains("redacted"),
            "{shown}"
        );
        let builder =
            Client::builder(Url::parse("https://x.example")?, Trust::SystemRoots).access_token("pat_very_secret");
        assert!(!format!("{builder:?}").contains("pat_very_secret"));
        Ok(())
    }

    #[test]
    fn only_requests_safe_to_repeat_are_retried() {
        for endpoint in [
            client::WHOAMI,
            client::READ_INBOX,
            client::SUBMIT_MESSAGE,
            client::SUBMIT_COMMIT,
        ] {
            assert!(retry_safe(endpoint), "{}", endpoint.path);
        }
        for endpoint in [
            client::REGISTER,
            client::LOGIN,
            client::CLAIM_KEY_PACKAGES,
            client::DELETE_DEVICE,
        ] {
            assert!(!retry_safe(endpoint), "{}", endpoint.path);
        }
    }

    #[tokio::test]
    async fn token_endpoints_need_a_token() -> Result<(), Error> {
        let mut c = client("https://chat.example.org")?;
        assert!(matches!(c.whoami().await, Err(Error::NotLoggedIn)));
        c.set_access_token("t");
        c.clear_access_token();
        assert!(matches!(c.devices().await, Err(Error::NotLoggedIn)));
        let c = c.with_token("line\nbreak");
        assert!(matches!(c.whoami().await, Err(Error::MalformedToken)));
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_servers_are_explained() -> Result<(), Error> {
        // Port 9 (discard) on loopback: nothing listens there in a test environment.
        let c = client("https://127.0.0.1:9")?;
        match c.health().await {
            Err(err @ Error::Transport { .. }) => {
                assert_eq!(err.to_string(), "cannot reach https://127.0.0.1:9: connection refused");
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        Ok(())
    }
}
