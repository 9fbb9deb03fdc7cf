//! The admin API of a test server: `[admin]` on a free loopback port with a token file,
//! and a small client for it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use parley_homeserver::config::{AdminConfig, Config};
use parley_specs::endpoints::{Endpoint, Method};

use crate::TestServer;

/// Gives `config` an admin API on a free loopback port whose token is in `dir`; returns
/// the token file.
pub fn enable_admin(config: &mut Config, dir: &Path) -> PathBuf {
    let token_file = dir.join("admin.token");
    parley_homeserver::admin::token::create_if_missing(&token_file).expect("admin token file");
    config.admin = Some(AdminConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        token_file: token_file.clone(),
    });
    token_file
}

/// The admin API of a running test server.
pub struct AdminApi {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl AdminApi {
    pub fn of(server: &TestServer) -> Self {
        let addr = server.admin_addr.expect("the server has an [admin] section");
        let admin = server.config.admin.as_ref().expect("[admin]");
        let token = parley_homeserver::admin::token::load(&admin.token_file).expect("token");
        Self {
            base: format!("http://{addr}"),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request with `token` (None: no Authorization header) and returns the
    /// status and the JSON body (Null when there is none).
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
            Method::Delete => self.http.delete(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("admin response body");
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// `endpoint` with its path parameters, with the admin token.
    pub async fn call(
        &self,
        endpoint: Endpoint,
        params: &[&str],
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.send_as(Some(&self.token), endpoint.method, &endpoint.path_with(params), body)
            .await
    }

    /// Like `call`, expecting a 2xx answer.
    pub async fn ok(&self, endpoint: Endpoint, params: &[&str], body: Option<serde_json::Value>) -> serde_json::Value {
        let (status, json) = self.call(endpoint, params, body).await;
        assert!(
            (200..300).contains(&status),
            "{} {}: {status} {json}",
            endpoint.method.as_str(),
            endpoint.path
        );
        json
    }
}
