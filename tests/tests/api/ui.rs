//! `parley ui` as a user runs it: the real binary, its printed URL, the local API over
//! real HTTP and the event WebSocket, against a real homeserver. Two users in two
//! `parley ui` processes (two profiles) talk; protection, disappearing messages, safety
//! numbers and the send block after a verified contact's devices change.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use parley_sdk::messenger::Messenger;
use parley_tests::TestServer;
use parley_tests::process::parley_binary;
use parley_tests::server::{ca_pem, https_client};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{PASSWORD, logged_in};

const PASSPHRASE: &str = "a long passphrase for the store";
const WAIT: Duration = Duration::from_secs(30);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Ui {
    _child: tokio::process::Child,
    port: u16,
    secret: String,
    http: reqwest::Client,
}

impl Ui {
    async fn start(home: &Path, profile: &str) -> Self {
        let mut child = tokio::process::Command::new(parley_binary())
            .arg("--home")
            .arg(home)
            .args(["--profile", profile, "--json", "ui"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start parley ui");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("parley ui prints its URL in time")
            .expect("read stdout")
            .expect("a line");
        let printed: Value = serde_json::from_str(&line).expect("JSON line");
        let url = printed["url"].as_str().expect("url").to_owned();
        let port = printed["port"].as_u64().expect("port") as u16;
        let (base, secret) = url.split_once("/#secret=").expect("secret in the fragment");
        assert_eq!(base, format!("http://127.0.0.1:{port}"));
        assert_eq!(secret.len(), 64);
        Self {
            _child: child,
            port,
            secret: secret.to_owned(),
            http: https_client(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.secret)
            .header("Origin", format!("http://127.0.0.1:{}", self.port));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {value}");
        value
    }

    async fn events(&self) -> Socket {
        let url = format!("ws://127.0.0.1:{}/api/events?secret={}", self.port, self.secret);
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("event WebSocket");
        socket
    }

    async fn register(&self, server: &TestServer, username: &str) -> Value {
        self.ok(
            Method::POST,
            "/api/register",
            Some(json!({"server": server.url, "username": username, "password": PASSWORD,
                        "passphrase": PASSPHRASE, "ca_pem": ca_pem()})),
        )
        .await
    }
}

/// The next event on `socket` that `wanted` accepts (others are skipped), within `WAIT`.
async fn next_event(socket: &mut Socket, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(frame) = socket.next().await {
            match frame.expect("event frame") {
                Message::Text(text) => {
                    let event: Value = serde_json::from_str(&text).expect("JSON event");
                    if wanted(&event) {
                        return Some(event);
                    }
                }
                Message::Ping(p) => {
                    let _ = socket.send(Message::Pong(p)).await;
                }
                _ => {}
            }
        }
        None
    })
    .await;
    found
        .unwrap_or_else(|_| panic!("no {what} event within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the event stream closed before {what}"))
}

fn path(group: &str, rest: &str) -> String {
    format!("/api/conversations/{group}{rest}")
}

#[tokio::test]
async fn the_local_ui_is_protected_and_two_users_talk_through_it() {
    let server = TestServer::spawn().await;
    let home = tempfile::tempdir().expect("tempdir");
    let ann = Ui::start(home.path(), "ann").await;

    // Protection: the secret, the origin, the host.
    let session = ann.url("/api/session");
    let refused = ann.http.get(&session).send().await.expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.json::<Value>().await.expect("json")["error"], "bad_secret");
    let wrong = ann
        .http
        .get(&session)
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status().as_u16(), 401);
    let foreign = ann
        .http
        .get(&session)
        .bearer_auth(&ann.secret)
        .header("Origin", "http://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(foreign.status().as_u16(), 403);
    assert_eq!(foreign.json::<Value>().await.expect("json")["error"], "bad_origin");
    let rebound = ann
        .http
        .get(&session)
        .bearer_auth(&ann.secret)
        .header("Host", format!("evil.example:{}", ann.port))
        .send()
        .await
        .expect("request");
    assert_eq!(rebound.status().as_u16(), 403);
    let bad_socket = format!("ws://127.0.0.1:{}/api/events?secret=nope", ann.port);
    assert!(tokio_tungstenite::connect_async(bad_socket).await.is_err());
    let page = ann.http.get(ann.url("/")).send().await.expect("index");
    assert_eq!(page.status().as_u16(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().expect("type").starts_with("text/html"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'self'") && csp.contains(&format!("ws://127.0.0.1:{}", ann.port)),
        "{csp}"
    );
    assert!(page.text().await.expect("html").contains("<html"));
    let spa = ann.http.get(ann.url("/conversations/x")).send().await.expect("spa");
    assert_eq!(spa.status().as_u16(), 200, "unknown pages get the app");
    let (status, body) = ann.call(Method::GET, "/api/nothing", None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let signed_out = ann.ok(Method::GET, "/api/session", None).await;
    assert_eq!(signed_out["signed_in"], false);
    let (status, body) = ann.call(Method::GET, "/api/conversations", None).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("not_signed_in")));

    // Two users sign up in their own `parley ui`.
    let ben = Ui::start(home.path(), "ben").await;
    let (status, short) = ann
        .call(
            Method::POST,
            "/api/register",
            Some(json!({"server": server.url, "username": "ann", "password": PASSWORD,
                        "passphrase": "short", "ca_pem": ca_pem()})),
        )
        .await;
    assert_eq!(
        (status, short["error"].as_str()),
        (400, Some("invalid_input")),
        "{short}"
    );
    let ann_session = ann.register(&server, "ann").await;
    assert_eq!(ann_session["signed_in"], true);
    let ann_id = ann_session["user_id"].as_str().expect("user").to_owned();
    let ben_id = ben.register(&server, "ben").await["user_id"]
        .as_str()
        .expect("user")
        .to_owned();
    let mut ann_events = ann.events().await;
    let mut ben_events = ben.events().await;

    // A conversation; messages both ways, pushed over the event streams.
    let conversation = ann
        .ok(Method::POST, "/api/conversations", Some(json!({"members": [ben_id]})))
        .await;
    let group = conversation["group_id"].as_str().expect("group").to_owned();
    assert_eq!(conversation["members"].as_array().expect("members").len(), 2);
    assert_eq!(conversation["encryption"]["protocol"], "MLS");
    next_event(&mut ben_events, "joined conversation", |e| {
        e["event"] == "conversation" && e["conversation"]["group_id"] == group.as_str()
    })
    .await;
    let sent = ann
        .ok(
            Method::POST,
            &path(&group, "/messages"),
            Some(json!({"text": "hello ben"})),
        )
        .await;
    assert_eq!(
        (sent["mine"].as_bool(), sent["text"].as_str()),
        (Some(true), Some("hello ben"))
    );
    let got = next_event(&mut ben_events, "message to ben", |e| e["event"] == "message").await;
    assert_eq!(got["message"]["text"], "hello ben");
    assert_eq!(got["message"]["sender"], ann_id.as_str());
    ben.ok(
        Method::POST,
        &path(&group, "/messages"),
        Some(json!({"text": "hi ann"})),
    )
    .await;
    let got = next_event(&mut ann_events, "message to ann", |e| {
        e["event"] == "message" && e["message"]["mine"] == false
    })
    .await;
    assert_eq!(got["message"]["text"], "hi ann");
    let delivered = parley_tests::wait_until(WAIT, || async {
        let history = ann.ok(Method::GET, &path(&group, "/messages"), None).await;
        history[0]["delivery"]["state"] == "delivered"
    })
    .await;
    assert!(delivered, "ben's device acknowledged ann's message");
    // Own messages say which member servers have them (here one server, the hub).
    let history = ann.ok(Method::GET, &path(&group, "/messages"), None).await;
    let ann_server = ann_id.split_once('@').expect("user id").1;
    assert_eq!(
        history[0]["delivery"]["servers"],
        json!([{"server": ann_server, "delivered": true}]),
        "{history}"
    );
    assert!(history[1]["delivery"].get("servers").is_none(), "{history}");

    // Typing, unread counts, search, export.
    ben.ok(Method::POST, &path(&group, "/typing"), Some(json!({"typing": true})))
        .await;
    let typing = next_event(&mut ann_events, "typing", |e| e["event"] == "typing").await;
    assert_eq!(
        (typing["user_id"].as_str(), typing["typing"].as_bool()),
        (Some(ben_id.as_str()), Some(true))
    );
    let listed = ann.ok(Method::GET, "/api/conversations", None).await;
    assert_eq!(listed[0]["unread"], 1, "{listed}");
    let seq = got["message"]["seq"].as_i64().expect("seq");
    ann.ok(Method::POST, &path(&group, "/read"), Some(json!({"up_to": seq})))
        .await;
    assert_eq!(ann.ok(Method::GET, &path(&group, ""), None).await["unread"], 0);
    let found = ben.ok(Method::GET, "/api/search?q=HELLO", None).await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    let found = ben.ok(Method::GET, &path(&group, "/messages?search=hi"), None).await;
    assert_eq!(found[0]["text"], "hi ann");
    let export = ann
        .http
        .get(ann.url(&path(&group, "/export?format=json")))
        .bearer_auth(&ann.secret)
        .send()
        .await
        .expect("export");
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    let exported: Value = export.json().await.expect("export json");
    assert_eq!(exported["messages"].as_array().map(Vec::len), Some(2));

    // Reactions, replies and edits through the local API, pushed to the other side.
    let first = sent["seq"].as_i64().expect("seq");
    let reacted = ben
        .ok(
            Method::POST,
            &path(&group, &format!("/messages/{first}/reactions")),
            Some(json!({"emoji": "👍"})),
        )
        .await;
    assert_eq!(
        reacted["reactions"],
        json!([{"emoji": "👍", "count": 1, "mine": true, "users": [ben_id]}])
    );
    let seen = next_event(&mut ann_events, "ben's reaction", |e| {
        e["event"] == "message_changed" && e["message"]["seq"] == first && e["message"]["reactions"][0]["count"] == 1
    })
    .await;
    assert_eq!(seen["message"]["reactions"][0]["mine"], false);
    let reply = ben
        .ok(
            Method::POST,
            &path(&group, "/messages"),
            Some(json!({"text": "re: hello", "reply_to": first})),
        )
        .await;
    assert_eq!(reply["reply_to"], first);
    next_event(&mut ann_events, "ben's reply", |e| {
        e["event"] == "message" && e["message"]["reply_to"] == first
    })
    .await;
    let edited = ann
        .ok(
            Method::PUT,
            &path(&group, &format!("/messages/{first}")),
            Some(json!({"text": "hello again ben"})),
        )
        .await;
    assert!(edited["edited_at"].is_string(), "{edited}");
    next_event(&mut ben_events, "ann's edit", |e| {
        e["event"] == "message_changed"
            && e["message"]["text"] == "hello again ben"
            && e["message"]["edited_at"].is_string()
    })
    .await;
    // What is refused, with nothing sent.
    let (status, body) = ben
        .call(
            Method::PUT,
            &path(&group, &format!("/messages/{first}")),
            Some(json!({"text": "not mine to edit"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_allowed")), "{body}");
    let (status, body) = ben
        .call(
            Method::DELETE,
            &path(&group, &format!("/messages/{first}?for_everyone=true")),
            None,
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("not_allowed")), "{body}");
    let (status, body) = ben
        .call(
            Method::POST,
            &path(&group, "/messages/9999/reactions"),
            Some(json!({"emoji": "👍"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("no message #9999")),
        "{body}"
    );
    let (status, body) = ben
        .call(
            Method::POST,
            &path(&group, &format!("/messages/{first}/reactions")),
            Some(json!({"emoji": "two words"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_input")), "{body}");

    // Deleting a message for real.
    ann.ok(Method::DELETE, &path(&group, &format!("/messages/{first}")), None)
        .await;
    let history = ann.ok(Method::GET, &path(&group, "/messages"), None).await;
    assert!(history.as_array().expect("list").iter().all(|m| m["seq"] != first));

    // A disappearing-message timer.
    let timed = ann
        .ok(Method::PUT, &path(&group, "/timer"), Some(json!({"timer_secs": 2})))
        .await;
    assert_eq!(timed["timer_secs"], 2);
    let vanishing = ann
        .ok(
            Method::POST,
            &path(&group, "/messages"),
            Some(json!({"text": "vanishing"})),
        )
        .await;
    assert!(vanishing["expires_at"].is_string(), "{vanishing}");
    let vseq = vanishing["seq"].clone();
    next_event(&mut ben_events, "vanishing message", |e| {
        e["event"] == "message" && e["message"]["seq"] == vseq
    })
    .await;
    next_event(&mut ben_events, "expiry on ben", |e| {
        e["event"] == "message_deleted" && e["seq"] == vseq
    })
    .await;
    next_event(&mut ann_events, "expiry on ann", |e| {
        e["event"] == "message_deleted" && e["seq"] == vseq
    })
    .await;
    ann.ok(Method::PUT, &path(&group, "/timer"), Some(json!({"timer_secs": null})))
        .await;

    // Safety numbers: verified, then ben's devices change and sending is blocked.
    let contact = ann.ok(Method::GET, &format!("/api/contacts/{ben_id}"), None).await;
    assert_eq!(
        contact["safety_number"].as_str().expect("number").split(' ').count(),
        12
    );
    assert_eq!(contact["verification"], "unverified");
    let verified = ann
        .ok(Method::POST, &format!("/api/contacts/{ben_id}/verify"), None)
        .await;
    assert_eq!(verified["verification"], "verified");
    assert_eq!(
        ann.ok(Method::GET, &path(&group, ""), None).await["encryption"]["all_verified"],
        true
    );

    let store = home.path().join("ben-second.sealed");
    let (client, login) = logged_in(&server, "ben").await;
    let mut second = Messenger::open(client, login.user_id, login.device_id, store, PASSPHRASE)
        .await
        .expect("second device store");
    second.sync().await.expect("second device publishes KeyPackages");
    let devices = ben.ok(Method::GET, "/api/devices", None).await;
    assert_eq!(devices.as_array().map(Vec::len), Some(2), "{devices}");
    ben.ok(
        Method::POST,
        &path(&group, "/members"),
        Some(json!({"users": [ben_id]})),
    )
    .await;
    let warning = next_event(&mut ann_events, "verified contact changed", |e| {
        e["event"] == "verified_contact_changed"
    })
    .await;
    assert_eq!(warning["user_id"], ben_id.as_str());
    let (status, blocked) = ann
        .call(
            Method::POST,
            &path(&group, "/messages"),
            Some(json!({"text": "blocked?"})),
        )
        .await;
    assert_eq!(
        (status, blocked["error"].as_str()),
        (409, Some("verified_contact_changed")),
        "{blocked}"
    );
    let conversation = ann.ok(Method::GET, &path(&group, ""), None).await;
    assert_eq!(conversation["encryption"]["changed_contacts"], json!([ben_id]));
    let contact = ann.ok(Method::GET, &format!("/api/contacts/{ben_id}"), None).await;
    assert_eq!(contact["verification"], "changed");
    assert_eq!(contact["added"].as_array().map(Vec::len), Some(1));
    let acknowledged = ann
        .ok(Method::POST, &format!("/api/contacts/{ben_id}/acknowledge"), None)
        .await;
    assert_eq!(acknowledged["verification"], "unverified");
    ann.ok(
        Method::POST,
        &path(&group, "/messages"),
        Some(json!({"text": "unblocked"})),
    )
    .await;
    let got = next_event(&mut ben_events, "message after acknowledging", |e| {
        e["event"] == "message" && e["message"]["text"] == "unblocked"
    })
    .await;
    assert_eq!(got["group_id"], group.as_str());

    // Signing out keeps the store; the session is gone.
    ann.ok(Method::POST, "/api/logout", None).await;
    assert_eq!(ann.ok(Method::GET, "/api/session", None).await["signed_in"], false);
}

/// One request written byte for byte, as a local process could send it: HTTP clients
/// (reqwest, browsers) resolve dot segments and `%2e` before sending, which is exactly what
/// this test must not let them do. Returns the status and the body.
async fn raw_request(port: u16, method: &str, path: &str, extra_headers: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n{extra_headers}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Every spelling of an API path that a server might read as the API (percent-encoded
/// letters or slashes, encoded twice, doubled slashes, dot segments, other letter case)
/// is refused without the launch secret: the secret guards whatever the router sends to
/// an API handler, and the web app's files are never served for a path that reads as one.
#[tokio::test]
async fn the_launch_secret_cannot_be_bypassed_by_spelling_the_path_differently() {
    let home = tempfile::tempdir().expect("tempdir");
    let ui = Ui::start(home.path(), "eve").await;
    let session = [
        "/%61pi/session",
        "/%61%70%69/session",
        "/%41pi/session",
        "/api/%73ession",
        "/api%2Fsession",
        "/api%2fsession",
        "/%2561pi/session",
        "/API/session",
        "/Api/Session",
        "//api/session",
        "/api//session",
        "///api/session",
        "/./api/session",
        "/api/./session",
        "/x/../api/session",
        "/assets/../api/session",
        "/%2e/api/session",
        "/x/%2e%2e/api/session",
        "/x/%2E%2E/%61pi/session",
        "/api/conversations/../session",
        "/api/session/",
        "/api/session?x=1",
        "/api\\session",
        "/%61pi\\session",
    ];
    for path in session {
        let (status, body) = raw_request(ui.port, "GET", path, "").await;
        assert!(
            matches!(status, 401 | 404) && !body.contains("signed_in"),
            "GET {path} without the secret answered {status}: {body}"
        );
    }
    // A write (signing out) and the event WebSocket, spelled the same ways.
    for path in ["/%61pi/logout", "//api/logout", "/x/../api/logout", "/API/logout"] {
        let (status, body) = raw_request(ui.port, "POST", path, "").await;
        assert!(
            matches!(status, 401 | 404),
            "POST {path} without the secret answered {status}: {body}"
        );
    }
    let upgrade = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for path in ["/%61pi/events", "/api/%65vents", "//api/events", "/API/events"] {
        let (status, body) = raw_request(ui.port, "GET", path, upgrade).await;
        assert!(
            matches!(status, 401 | 404),
            "a WebSocket at {path} without the secret answered {status}: {body}"
        );
    }
    // With the secret, the API answers; without it the web app is still served.
    let signed_out = ui.ok(Method::GET, "/api/session", None).await;
    assert_eq!(signed_out["signed_in"], false);
    let (status, body) = raw_request(ui.port, "GET", "/", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html"), "{body}");
}

/// Two-step sign-in from the web app's side: the Security dialog's calls (state,
/// enrolment with its QR code as SVG, confirmation) and a sign-in that the homeserver
/// answers `second_factor_required` until the code comes with it.
#[tokio::test]
async fn the_web_app_turns_on_two_step_sign_in_and_signs_in_with_a_code() {
    use parley_tests::totp::{code_now, with_time_left_in_step};

    let keys = tempfile::tempdir().expect("tempdir");
    let server = TestServer::spawn_with(|config| {
        config.second_factor.key_file = Some(keys.path().join("second-factor.key"));
    })
    .await;
    let home = tempfile::tempdir().expect("tempdir");
    let cat = Ui::start(home.path(), "cat").await;
    cat.register(&server, "cat").await;
    let state = cat.ok(Method::GET, "/api/2fa", None).await;
    assert_eq!(
        (state["enabled"].as_bool(), state["pending"].as_bool()),
        (Some(false), Some(false))
    );
    with_time_left_in_step(15).await;
    let enrollment = cat.ok(Method::POST, "/api/2fa/enroll", Some(json!({}))).await;
    let secret = enrollment["secret"].as_str().expect("secret").to_owned();
    let svg = enrollment["qr_svg"].as_str().expect("qr_svg");
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    let (status, body) = cat
        .call(Method::POST, "/api/2fa/confirm", Some(json!({"code": "000000"})))
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_second_factor")));
    let codes = cat
        .ok(
            Method::POST,
            "/api/2fa/confirm",
            Some(json!({"code": code_now(&secret, -1)})),
        )
        .await;
    assert_eq!(codes["recovery_codes"].as_array().map(Vec::len), Some(10));
    let state = cat.ok(Method::GET, "/api/2fa", None).await;
    assert_eq!(
        (state["enabled"].as_bool(), state["recovery_codes_left"].as_i64()),
        (Some(true), Some(10))
    );
    // The page may show the QR code (a data: image) under its policy.
    let page = cat.http.get(cat.url("/")).send().await.expect("index");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("img-src 'self' blob: data:;"), "{csp}");

    // Another profile signs in: the code is asked for, then accepted.
    let laptop = Ui::start(home.path(), "cat-laptop").await;
    let login = |second_factor: Option<String>| {
        let mut body = json!({"server": server.url, "username": "cat", "password": PASSWORD,
                              "passphrase": PASSPHRASE, "ca_pem": ca_pem()});
        if let Some(code) = second_factor {
            body["second_factor"] = json!(code);
        }
        body
    };
    let (status, body) = laptop.call(Method::POST, "/api/login", Some(login(None))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("second_factor_required")),
        "{body}"
    );
    let (status, body) = laptop
        .call(Method::POST, "/api/login", Some(login(Some("123456".into()))))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_second_factor")),
        "{body}"
    );
    let session = laptop
        .ok(Method::POST, "/api/login", Some(login(Some(code_now(&secret, 0)))))
        .await;
    assert_eq!(session["signed_in"], true);

    // Turned off with the password and a recovery code.
    let recovery = codes["recovery_codes"][0].as_str().expect("a code");
    laptop
        .ok(
            Method::POST,
            "/api/2fa/disable",
            Some(json!({"password": PASSWORD, "code": recovery})),
        )
        .await;
    assert_eq!(laptop.ok(Method::GET, "/api/2fa", None).await["enabled"], false);
}
