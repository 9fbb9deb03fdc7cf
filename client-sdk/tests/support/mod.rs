//! A mock homeserver for the SDK and CLI tests, so they need neither PostgreSQL nor the
//! homeserver crate: HTTPS with the test certificates in `testdata/`, HTTP/1.1, one thread
//! per connection. It answers either with a scripted reply or as a small in-memory
//! imitation of the client API (accounts, devices, tokens), routed by the endpoint
//! declarations of `parley_specs`. The real server is tested in the workspace's `tests/`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use parley_specs::client_api::{DeviceInfo, DeviceList, LoginResponse, WhoAmIResponse};
use parley_specs::endpoints::{Endpoint, client, ops};
use parley_specs::keys_api::{ClaimKeyPackagesResponse, ClaimedKeyPackage, KeyPackageCount};
use parley_specs::{Base64Bytes, DeviceId, ErrorBody, ErrorCode, UserId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

pub const SERVER_NAME: &str = "mock.parley";

/// Path of a file in `testdata/`.
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// The CA that issued the mock server's certificate.
pub fn ca_file() -> PathBuf {
    testdata("ca.pem")
}

/// One request as the mock server received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Whether this request is a call of `endpoint` (path parameters match anything).
    pub fn is(&self, endpoint: Endpoint) -> bool {
        self.method == endpoint.method.as_str() && path_matches(endpoint.path, &self.path)
    }
}

fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// What the mock server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    pub fn empty() -> Self {
        Self {
            status: 204,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn error(code: ErrorCode, message: &str) -> Self {
        let body = ErrorBody {
            error: code,
            message: message.into(),
            retry_after_ms: None,
            current_epoch: None,
        };
        Self::json(code.http_status(), &body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running mock server; it lives until the test process ends.
pub struct MockServer {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl MockServer {
    /// A server answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let handler: Arc<Handler> = Arc::new(handler);
        let tls = Arc::new(server_config());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("https://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, tls, recorded) = (handler.clone(), tls.clone(), recorded.clone());
                std::thread::spawn(move || serve(stream, &tls, &*handler, &recorded));
            }
        });
        Self { url, requests }
    }

    /// A server imitating the client API with in-memory accounts.
    pub fn homeserver() -> Self {
        let state = Mutex::new(FakeHomeserver::default());
        Self::start(move |req| state.lock().expect("state").handle(req))
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }
}

fn server_config() -> rustls::ServerConfig {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(testdata("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(testdata("server.key")).expect("server.key");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate")
}

/// Serves one connection: one request, one reply, close.
fn serve(stream: TcpStream, tls: &Arc<rustls::ServerConfig>, handler: &Handler, recorded: &Mutex<Vec<Request>>) {
    let Ok(conn) = rustls::ServerConnection::new(tls.clone()) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(conn, stream);
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    recorded.lock().expect("requests").push(request.clone());
    let reply = handler(&request);
    let mut head = format!(
        "HTTP/1.1 {} Mock\r\ncontent-length: {}\r\nconnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    stream.conn.send_close_notify();
    let _ = stream.flush();
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (request_line.next()?.to_owned(), request_line.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

#[derive(Default)]
struct FakeHomeserver {
    /// Localpart → account.
    accounts: BTreeMap<String, Account>,
    issued: u32,
}

struct Account {
    password: String,
    devices: Vec<Device>,
}

struct Device {
    id: String,
    name: String,
    token: String,
    /// Uploaded key packages (opaque bytes here), claimed in order.
    key_packages: Vec<Base64Bytes>,
}

impl FakeHomeserver {
    fn handle(&mut self, req: &Request) -> Reply {
        let body = req.json();
        let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
        if req.is(ops::HEALTH) {
            return Reply::json(200, &json!({"status": "ok"}));
        }
        if req.is(client::REGISTER) {
            let username = text("username");
            if text("password").chars().count() < 10 {
                return Reply::error(ErrorCode::WeakPassword, "password must have at least 10 characters");
            }
            if self.accounts.contains_key(&username) {
                return Reply::error(ErrorCode::UsernameTaken, "username is taken");
            }
            self.accounts.insert(
                username.clone(),
                Account {
                    password: text("password"),
                    devices: vec![],
                },
            );
            return self.new_device(&username, body["device_name"].as_str());
        }
        if req.is(client::LOGIN) {
            let username = text("username");
            let local = username
                .strip_suffix(&format!("@{SERVER_NAME}"))
                .unwrap_or(&username)
                .to_owned();
            if self.accounts.get(&local).is_none_or(|a| a.password != text("password")) {
                return Reply::error(ErrorCode::InvalidCredentials, "wrong username or password");
            }
            return self.new_device(&local, body["device_name"].as_str());
        }
        let Some(token) = req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")) else {
            return Reply::error(ErrorCode::MissingToken, "no access token");
        };
        let Some((user, device)) = self.owner(token) else {
            return Reply::error(ErrorCode::UnknownToken, "unknown access token");
        };
        if req.is(client::CLAIM_KEY_PACKAGES) {
            let wanted = text("user_id");
            let local = wanted
                .strip_suffix(&format!("@{SERVER_NAME}"))
                .unwrap_or_default()
                .to_owned();
            let Some(account) = self.accounts.get_mut(&local) else {
                return Reply::error(ErrorCode::NotFound, "no such user");
            };
            let (mut key_packages, mut devices_without_key_packages) = (vec![], vec![]);
            for d in &mut account.devices {
                if d.key_packages.is_empty() {
                    devices_without_key_packages.push(device_id(&d.id));
                } else {
                    let key_package = d.key_packages.remove(0);
                    key_packages.push(ClaimedKeyPackage {
                        device_id: device_id(&d.id),
                        key_package,
                        last_resort: false,
                    });
                }
            }
            return Reply::json(
                200,
                &ClaimKeyPackagesResponse {
                    user_id: user_id(&local),
                    key_packages,
                    devices_without_key_packages,
                },
            );
        }
        let Some(account) = self.accounts.get_mut(&user) else {
            return Reply::error(ErrorCode::Internal, "account vanished");
        };
        let path_device = req.path.rsplit('/').next().unwrap_or_default().to_owned();
        if req.is(client::WHOAMI) {
            Reply::json(
                200,
                &WhoAmIResponse {
                    user_id: user_id(&user),
                    device_id: device_id(&device),
                },
            )
        } else if req.is(client::LOGOUT) {
            account.devices.retain(|d| d.id != device);
            Reply::empty()
        } else if req.is(client::LOGOUT_ALL) {
            account.devices.clear();
            Reply::empty()
        } else if req.is(client::CHANGE_PASSWORD) {
            if text("current_password") != account.password {
                return Reply::error(ErrorCode::InvalidCredentials, "wrong password");
            }
            if text("new_password").chars().count() < 10 {
                return Reply::error(ErrorCode::WeakPassword, "password must have at least 10 characters");
            }
            account.password = text("new_password");
            account.devices.retain(|d| d.id == device);
            Reply::empty()
        } else if req.is(client::UPLOAD_KEY_PACKAGES) || req.is(client::KEY_PACKAGE_COUNT) {
            let Some(d) = account.devices.iter_mut().find(|d| d.id == device) else {
                return Reply::error(ErrorCode::Internal, "device vanished");
            };
            if req.is(client::UPLOAD_KEY_PACKAGES) {
                let uploaded: Vec<Base64Bytes> =
                    serde_json::from_value(body["key_packages"].clone()).unwrap_or_default();
                d.key_packages.extend(uploaded);
            }
            Reply::json(
                200,
                &KeyPackageCount {
                    available: d.key_packages.len() as i64,
                    last_resort: false,
                },
            )
        } else if req.is(client::LIST_DEVICES) {
            let devices = account.devices.iter().map(|d| device_info(d, d.id == device)).collect();
            Reply::json(200, &DeviceList { devices })
        } else if req.is(client::RENAME_DEVICE) {
            match account.devices.iter_mut().find(|d| d.id == path_device) {
                Some(d) => {
                    d.name = text("display_name");
                    Reply::json(200, &device_info(d, d.id == device))
                }
                None => Reply::error(ErrorCode::NotFound, "no such device"),
            }
        } else if req.is(client::DELETE_DEVICE) {
            let before = account.devices.len();
            account.devices.retain(|d| d.id != path_device);
            if account.devices.len() == before {
                Reply::error(ErrorCode::NotFound, "no such device")
            } else {
                Reply::empty()
            }
        } else {
            Reply::error(ErrorCode::UnrecognizedEndpoint, "no such endpoint")
        }
    }

    fn new_device(&mut self, localpart: &str, name: Option<&str>) -> Reply {
        self.issued += 1;
        let id = format!("DEV{:05}", self.issued);
        let token = format!("pat_mock_secret_{}", self.issued);
        let device = Device {
            id: id.clone(),
            name: name.unwrap_or("unnamed").to_owned(),
            token: token.clone(),
            key_packages: vec![],
        };
        if let Some(account) = self.accounts.get_mut(localpart) {
            account.devices.push(device);
        }
        Reply::json(
            200,
            &LoginResponse {
                user_id: user_id(localpart),
                device_id: device_id(&id),
                access_token: token,
            },
        )
    }

    /// The localpart and device id owning `token`.
    fn owner(&self, token: &str) -> Option<(String, String)> {
        self.accounts.iter().find_map(|(user, account)| {
            account
                .devices
                .iter()
                .find(|d| d.token == token)
                .map(|d| (user.clone(), d.id.clone()))
        })
    }
}

fn user_id(localpart: &str) -> UserId {
    UserId::parse(&format!("{localpart}@{SERVER_NAME}")).expect("user id")
}

fn device_id(id: &str) -> DeviceId {
    DeviceId::parse(id).expect("device id")
}

fn device_info(d: &Device, current: bool) -> DeviceInfo {
    let now = time::OffsetDateTime::now_utc();
    DeviceInfo {
        device_id: device_id(&d.id),
        display_name: d.name.clone(),
        created_at: now,
        last_seen_at: now,
        current,
    }
}
