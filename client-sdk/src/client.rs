use std::fmt;
use std::time::Duration;

use parley_specs::DeviceId;
use parley_specs::client_api::{
    ChangePasswordRequest, DeviceInfo, DeviceList, HealthResponse, LoginRequest, LoginResponse, ReadyResponse,
    RegisterRequest, RenameDeviceRequest, WhoAmIResponse,
};
use parley_specs::endpoints::{Auth, Endpoint, Method, client, ops};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::tls::{Trust, client_config};
use crate::Error;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one homeserver's client API, optionally logged in as one device.
/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    access_token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client for the homeserver at `base_url` (e.g. `https://chat.example.org`).
    pub fn new(base_url: Url, trust: Trust) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(client_config(&trust)?)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("parley-sdk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Self { http, base: base_url, access_token: None })
    }

    /// The same client, logged in with `token`.
    pub fn with_access_token(mut self, token: impl Into<String>) -> Self {
        self.set_access_token(token);
        self
    }

    pub fn set_access_token(&mut self, token: impl Into<String>) {
        self.access_token = Some(token.into());
    }

    pub fn clear_access_token(&mut self) {
        self.access_token = None;
    }

    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Creates an account and logs in its first device. The client stays as it was:
    /// call `set_access_token` with the returned token to act as that device.
    pub async fn register(&self, req: &RegisterRequest) -> Result<LoginResponse, Error> {
        self.call(client::REGISTER, &[], Some(req)).await
    }

    /// Logs in a new device of an existing account.
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

    pub async fn whoami(&self) -> Result<WhoAmIResponse, Error> {
        self.call(client::WHOAMI, &[], None::<&()>).await
    }

    /// Changes the password; every other device of the account is logged out.
    pub async fn change_password(&self, req: &ChangePasswordRequest) -> Result<(), Error> {
        self.call_no_content(client::CHANGE_PASSWORD, &[], Some(req)).await
    }

    pub async fn devices(&self) -> Result<DeviceList, Error> {
        self.call(client::LIST_DEVICES, &[], None::<&()>).await
    }

    pub async fn rename_device(&self, device: &DeviceId, display_name: &str) -> Result<DeviceInfo, Error> {
        let body = RenameDeviceRequest { display_name: display_name.to_owned() };
        self.call(client::RENAME_DEVICE, &[device.as_str()], Some(&body)).await
    }

    /// Deletes a device of the account (this one too), revoking its token.
    pub async fn delete_device(&self, device: &DeviceId) -> Result<(), Error> {
        self.call_no_content(client::DELETE_DEVICE, &[device.as_str()], None::<&()>).await
    }

    pub async fn health(&self) -> Result<HealthResponse, Error> {
        self.call(ops::HEALTH, &[], None::<&()>).await
    }

    /// Readiness; a not-ready server answers 503, which this returns as an error.
    pub async fn ready(&self) -> Result<ReadyResponse, Error> {
        self.call(ops::READY, &[], None::<&()>).await
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<&B>,
    ) -> Result<R, Error> {
        let (url, bytes) = self.send(endpoint, params, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode { url, reason: e.to_string() })
    }

    async fn call_no_content<B: Serialize>(&self, endpoint: Endpoint, params: &[&str], body: Option<&B>) -> Result<(), Error> {
        self.send(endpoint, params, body).await.map(drop)
    }

    /// Sends one request; returns the URL (for error messages) and the success body.
    async fn send<B: Serialize>(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<&B>,
    ) -> Result<(String, bytes::Bytes), Error> {
        let url = self.base.join(&endpoint.path_with(params))?;
        let shown = url.to_string();
        let method = match endpoint.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, url);
        if endpoint.auth == Auth::AccessToken {
            let token = self.access_token.as_deref().ok_or(Error::NotLoggedIn)?;
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| Error::Transport { url: shown.clone(), reason: describe(&e) };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok((shown, bytes))
        } else {
            Err(Error::from_response(status.as_u16(), retry_after, &bytes))
        }
    }
}

/// reqwest's Display stops at the outermost layer ("error sending request"); the cause
/// chain says what actually happened (connection refused, certificate unknown, ...).
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
