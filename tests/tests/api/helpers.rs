//! What the test modules share: accounts and sessions, messenger devices, devices on
//! homeserver processes, and signed federation requests from a test server's files.
//! Test modules import from here only, never from each other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use parley_federation::ServerKeyring;
use parley_federation::client::FederationClient;
use parley_federation::discovery::Reach;
use parley_federation::key_document::{KeyDocument, VerifiedKeys};
use parley_federation::request_auth::{RequestParts, authorization};
use parley_homeserver::config::Config;
use parley_homeserver::devcerts::IssuedCert;
use parley_homeserver::remote::now_ms;
use parley_homeserver::tls::{certified_key, root_store};
use parley_sdk::Client;
use parley_sdk::messenger::{Event, HistoryMessage, Messenger};
use parley_specs::client_api::{LoginRequest, LoginResponse, RegisterRequest};
use parley_specs::endpoints::federation::VERSION;
use parley_specs::keys_api::UploadKeyPackagesRequest;
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, GroupId, ServerName, UserId};
use parley_tests::TestServer;
use parley_tests::mls::TestMlsDevice;
use parley_tests::process::ProcessServer;
use parley_tests::server::{ca_file, federating_config, free_loopback_addr, https_client};

// Accounts and sessions.

pub const PASSWORD: &str = "correct horse battery staple";

pub fn register_request(username: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        password: PASSWORD.into(),
        device_name: Some("laptop".into()),
        invite_token: None,
        signature_key: None,
    }
}

pub fn login_request(username: &str, password: &str) -> LoginRequest {
    LoginRequest {
        username: username.into(),
        password: password.into(),
        device_name: Some("phone".into()),
        signature_key: None,
        second_factor: None,
    }
}

/// Registers `username` and returns a client logged in as its first device.
pub async fn registered(server: &TestServer, username: &str) -> (Client, LoginResponse) {
    let mut client = server.sdk();
    let session = client.register(&register_request(username)).await.expect("register");
    client.set_access_token(session.access_token.clone());
    (client, session)
}

/// Logs in a second (third, ...) device of an existing account.
pub async fn logged_in(server: &TestServer, username: &str) -> (Client, LoginResponse) {
    let mut client = server.sdk();
    let session = client.login(&login_request(username, PASSWORD)).await.expect("login");
    client.set_access_token(session.access_token.clone());
    (client, session)
}

/// The first device of a new account `username` (`registered`), or another device of an
/// existing one (`logged_in`).
pub async fn signed_in(server: &TestServer, username: &str, new_account: bool) -> (Client, LoginResponse) {
    if new_account {
        registered(server, username).await
    } else {
        logged_in(server, username).await
    }
}

/// The error code of a failed SDK call; panics if it succeeded.
pub fn code<T: std::fmt::Debug>(result: Result<T, parley_sdk::Error>) -> ErrorCode {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("expected an API error, got {e}")),
    }
}

/// Uploads `n` one-time KeyPackages for the logged-in device.
pub async fn upload_key_packages(client: &Client, session: &LoginResponse, n: usize) {
    let mls = TestMlsDevice::new(&session.user_id, &session.device_id);
    let key_packages = (0..n).map(|_| Base64Bytes::from(mls.key_package(false))).collect();
    client
        .upload_key_packages(&UploadKeyPackagesRequest { key_packages })
        .await
        .expect("upload");
}

// Messenger devices (the SDK's MLS state and history, sealed at rest).

pub const PASSPHRASE: &str = "a passphrase for the store";

/// How long a delivery may take. Generous: a test machine running the suite in parallel
/// is slow, and across servers (or processes) deliveries are asynchronous.
pub const DELIVERY: Duration = Duration::from_secs(60);

/// A device with its messenger, its store in `dir`: the first device of a new account
/// `name` (`first`), or another device of it.
pub async fn device(server: &TestServer, dir: &Path, name: &str, first: bool) -> Messenger {
    let (client, session) = signed_in(server, name, first).await;
    let path = store_path(dir, name, session.device_id.as_str());
    let mut messenger = Messenger::open(client, session.user_id, session.device_id, path, PASSPHRASE)
        .await
        .expect("open a new store");
    // The first operation that talks to the server publishes KeyPackages.
    messenger.sync().await.expect("first sync");
    messenger
}

/// Where `device` keeps the store of `name`'s device `device`.
pub fn store_path(dir: &Path, name: &str, device: &str) -> PathBuf {
    dir.join(format!("{name}-{device}.sealed"))
}

pub fn user(m: &Messenger) -> UserId {
    m.user_id().clone()
}

/// (seq, sender, text) of a history.
pub fn lines(history: &[HistoryMessage]) -> Vec<(i64, String, String)> {
    history
        .iter()
        .map(|m| (m.seq, m.sender.to_string(), m.text.clone()))
        .collect()
}

/// The texts of the device's history of `group`, oldest first.
pub async fn history_texts(m: &mut Messenger, group: &GroupId) -> Vec<String> {
    m.history(group, None)
        .await
        .expect("history")
        .into_iter()
        .map(|h| h.text)
        .collect()
}

/// Every device sends a message in turn, `rounds` times over; returns the (seq, sender,
/// text) of all of them in the hub's order, as `lines` gives a history.
pub async fn send_in_turn(devices: &mut [Messenger], group: &GroupId, rounds: usize) -> Vec<(i64, String, String)> {
    let mut sent = Vec::new();
    for round in 0..rounds {
        for (i, d) in devices.iter_mut().enumerate() {
            let text = format!("round {round} from device {i}");
            let message = d.send_text(group, &text, None).await.expect("send");
            sent.push((message.seq, d.user_id().to_string(), text));
        }
    }
    sent.sort();
    sent
}

/// Syncs until `done` holds for the device's history of `group` (deliveries across
/// servers are asynchronous); returns the events seen meanwhile.
pub async fn sync_until(
    m: &mut Messenger,
    group: &GroupId,
    what: &str,
    done: impl Fn(&[HistoryMessage]) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    let mut events = Vec::new();
    loop {
        events.extend(m.receive(Duration::from_millis(500)).await.expect("receive"));
        let history = m.history(group, None).await.unwrap_or_default();
        if done(&history) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never had {what}; history {:?}; events {events:?}",
            m.user_id(),
            lines(&history)
        );
    }
}

/// Syncs until the device has joined `group`.
pub async fn joined(m: &mut Messenger, group: &GroupId) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        if m.groups().await.expect("groups").iter().any(|g| g.group_id == *group) {
            return;
        }
        m.receive(Duration::from_millis(500)).await.expect("receive");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never joined {group}",
            m.user_id()
        );
    }
}

// Homeservers as processes, and devices on them.

/// Configurations of a.test and b.test, their files in `a_dir` and `b_dir`, each reaching
/// the other at a federation address picked now (for servers started as processes).
pub async fn a_and_b_configs(a_dir: &Path, b_dir: &Path) -> (Config, Config) {
    let (a_fed, b_fed) = (free_loopback_addr(), free_loopback_addr());
    let name = |s: &str| ServerName::parse(s).unwrap();
    let a = federating_config("a.test", a_dir, a_fed, vec![(name("b.test"), b_fed)], |_| {}).await;
    let b = federating_config("b.test", b_dir, b_fed, vec![(name("a.test"), a_fed)], |_| {}).await;
    (a, b)
}

/// A user's device on a homeserver process, that can move to another process of the
/// same homeserver (its store in `dir` and its session go with it).
pub struct ProcessDevice {
    name: String,
    token: String,
    pub messenger: Messenger,
}

impl ProcessDevice {
    /// A new user `name` with one device on `server`.
    pub async fn register(server: &ProcessServer, dir: &Path, name: &str) -> Self {
        let session = server.sdk().register(&register_request(name)).await.expect("register");
        let mut device = Self {
            name: name.to_owned(),
            messenger: open_on_process(
                server,
                dir,
                name,
                &session.access_token,
                session.user_id,
                session.device_id,
            )
            .await,
            token: session.access_token,
        };
        device.messenger.sync().await.expect("first sync");
        device
    }

    /// Connects to `server` instead, keeping its store and session.
    pub async fn reconnect(&mut self, server: &ProcessServer, dir: &Path) {
        let (user, device) = (self.user(), self.messenger.device_id().clone());
        self.messenger = open_on_process(server, dir, &self.name, &self.token, user, device).await;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn user(&self) -> UserId {
        self.messenger.user_id().clone()
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The messenger of a device of `name` (store in `dir`) talking to `server`.
async fn open_on_process(
    server: &ProcessServer,
    dir: &Path,
    name: &str,
    token: &str,
    user: UserId,
    device: DeviceId,
) -> Messenger {
    let client = server.sdk().with_access_token(token);
    Messenger::open(client, user, device, dir.join(format!("{name}.sealed")), PASSPHRASE)
        .await
        .expect("open the store")
}

// Signed federation requests made with a federating test server's files.

/// The signing keys of the federating test server whose files are in `dir`.
pub fn keyring_in(dir: &Path) -> ServerKeyring {
    ServerKeyring::load(&dir.join("server.key")).unwrap()
}

/// What the federating test server whose files are in `dir` presents in TLS.
pub fn identity_in(dir: &Path) -> IssuedCert {
    IssuedCert {
        cert_pem: std::fs::read_to_string(dir.join("tls.pem")).unwrap(),
        key_pem: std::fs::read_to_string(dir.join("tls.key")).unwrap(),
    }
}

/// `origin`'s `Authorization` for a GET of `destination`'s version endpoint.
pub fn version_request_signed(
    keyring: &ServerKeyring,
    origin: &ServerName,
    destination: &ServerName,
    ts: i64,
) -> String {
    let parts = RequestParts {
        method: "GET",
        path_and_query: VERSION.path,
        body: b"",
    };
    authorization(keyring, origin, destination, &parts, ts)
}

/// `origin`'s files in `dir`: a signed GET of `destination`'s version endpoint, over a
/// connection presenting its certificate. Returns the status and the error code.
pub async fn version_from(dir: &Path, origin: &str, destination: &TestServer) -> (u16, String) {
    let origin = ServerName::parse(origin).unwrap();
    let signature = version_request_signed(&keyring_in(dir), &origin, destination.server_name(), now_ms());
    let response = https_client(Some(&identity_in(dir)))
        .get(destination.federation_url(VERSION.path))
        .header("authorization", signature)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

// Two federating servers, and speaking as one of them.

/// `a.test` and `b.test`, each reaching the other, their key and certificate files in
/// `a_dir` and `b_dir`.
pub struct FederatedPair {
    pub a: TestServer,
    pub b: TestServer,
    pub a_dir: tempfile::TempDir,
    pub b_dir: tempfile::TempDir,
}

pub async fn federated_pair() -> FederatedPair {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Each reaches the other, so both addresses are chosen before either starts.
    let (a_addr, b_addr) = (free_loopback_addr(), free_loopback_addr());
    let name = |s: &str| ServerName::parse(s).unwrap();
    let a =
        TestServer::spawn_federating_with("a.test", a_dir.path(), a_addr, vec![(name("b.test"), b_addr)], |_| {}).await;
    let b =
        TestServer::spawn_federating_with("b.test", b_dir.path(), b_addr, vec![(name("a.test"), a_addr)], |_| {}).await;
    FederatedPair { a, b, a_dir, b_dir }
}

/// A federation client with the certificate and signing key of the federating test
/// server `name` whose files are in `dir`, reaching `peers`: what that server (or whoever
/// took it over) can send.
pub fn speaking_as(name: &str, dir: &Path, peers: &[&TestServer]) -> (FederationClient, ServerKeyring) {
    let identity = certified_key(&dir.join("tls.pem"), &dir.join("tls.key")).unwrap();
    let peers = peers
        .iter()
        .map(|s| (s.server_name().clone(), s.federation_addr.unwrap()))
        .collect();
    let client = FederationClient::new(
        ServerName::parse(name).unwrap(),
        identity,
        root_store(Some(&ca_file())).unwrap(),
        peers,
        Reach::PublicOnly,
    )
    .unwrap();
    (client, keyring_in(dir))
}

/// The verified keys of the federating test server `name` whose files are in `dir`, as
/// its key document publishes them.
pub fn published_keys(name: &str, dir: &Path) -> VerifiedKeys {
    let name = ServerName::parse(name).unwrap();
    KeyDocument::signed(&name, &keyring_in(dir), now_ms(), 3_600_000)
        .verify(&name, now_ms())
        .unwrap()
}

// A device behind a hub made to accept forged leaves (`FakeClientApi`).

/// alice@a.test's messenger (device `ALICE1`) talking to a fake client API that serves
/// whatever the test delivers, mallory@a.test (`M1`) as an openmls device, and the device
/// lists of both signed by a.test's key (bob@b.test's by b.test's, see `bob_device`).
pub struct BehindFakeHub {
    pub fake: parley_tests::fake_client_api::FakeClientApi,
    pub alice: Messenger,
    pub mallory: TestMlsDevice,
    pub a_key: ServerKeyring,
    pub b_key: ServerKeyring,
    pub _dir: tempfile::TempDir,
}

pub fn member(user: &str, device: &str) -> parley_specs::groups_api::GroupMember {
    parley_specs::groups_api::GroupMember {
        user_id: UserId::parse(user).unwrap(),
        device_id: DeviceId::parse(device).unwrap(),
    }
}

impl BehindFakeHub {
    pub async fn start() -> Self {
        let fake = parley_tests::fake_client_api::FakeClientApi::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (alice_id, mallory_id) = (member("alice@a.test", "ALICE1"), member("mallory@a.test", "M1"));
        let mut alice = Messenger::open(
            fake.client(),
            alice_id.user_id.clone(),
            alice_id.device_id.clone(),
            dir.path().join("alice.sealed"),
            PASSPHRASE,
        )
        .await
        .unwrap();
        alice.set_websocket_enabled(false);
        // Publishes KeyPackages to the fake.
        alice.sync().await.expect("first sync");
        let mallory = TestMlsDevice::new(&mallory_id.user_id, &mallory_id.device_id);
        let (a_key, b_key) = (ServerKeyring::generate(), ServerKeyring::generate());
        fake.set_devices(
            &alice_id.user_id,
            &[(alice_id.device_id.clone(), alice.signature_key().to_vec())],
            &a_key,
        )
        .await;
        fake.set_devices(
            &mallory_id.user_id,
            &[(mallory_id.device_id.clone(), mallory.signer.public().to_vec())],
            &a_key,
        )
        .await;
        Self {
            fake,
            alice,
            mallory,
            a_key,
            b_key,
            _dir: dir,
        }
    }

    /// bob@b.test's real device `B1`, listed with its key by b.test.
    pub async fn bob_device(&self) -> TestMlsDevice {
        let bob = member("bob@b.test", "B1");
        let device = TestMlsDevice::new(&bob.user_id, &bob.device_id);
        self.fake
            .set_devices(
                &bob.user_id,
                &[(bob.device_id, device.signer.public().to_vec())],
                &self.b_key,
            )
            .await;
        device
    }

    /// A KeyPackage alice's device uploaded.
    pub fn alice_key_package(&self) -> openmls::prelude::KeyPackage {
        parley_tests::mls::key_package_from(&self.fake.take_key_package())
    }

    /// Delivers a Welcome (or a commit, or a message) from mallory to alice's inbox.
    pub fn deliver_from_mallory(
        &self,
        kind: parley_specs::groups_api::InboxEntryKind,
        group: &GroupId,
        seq: i64,
        payload: Vec<u8>,
    ) {
        self.fake
            .deliver(kind, group, seq, &member("mallory@a.test", "M1"), payload);
    }
}

// A person on the real `parley` CLI.

/// One person's `parley` command line: a CLI home of their own (its `default` profile is
/// one device), with their password and store passphrase in files beside it (not in the
/// home: losing the device deletes the home, not what the person remembers).
pub struct CliUser {
    pub name: String,
    pub home: PathBuf,
    secrets: PathBuf,
    server_url: String,
    ca_file: PathBuf,
}

/// What one `parley` run printed.
#[derive(Debug)]
pub struct CliRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliUser {
    /// `name`'s CLI, in `dir/name-<n>` homes, talking to the server at `server_url`.
    pub fn new(dir: &Path, name: &str, server_url: &str) -> Self {
        let secrets = dir.join(format!("{name}-secrets"));
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("password"), format!("{PASSWORD}\n")).unwrap();
        std::fs::write(secrets.join("passphrase"), format!("{PASSPHRASE}\n")).unwrap();
        Self {
            name: name.to_owned(),
            home: dir.join(format!("{name}-home")),
            secrets,
            server_url: server_url.to_owned(),
            ca_file: ca_file(),
        }
    }

    /// A file beside the password (e.g. a recovery key), written now.
    pub fn secret_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.secrets.join(name);
        std::fs::write(&path, format!("{contents}\n")).unwrap();
        path
    }

    /// Runs `parley ARGS` in this person's home; never panics.
    pub async fn run(&self, args: &[&str]) -> CliRun {
        let out = tokio::process::Command::new(parley_tests::process::parley_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--home")
            .arg(&self.home)
            .arg("--passphrase-file")
            .arg(self.secrets.join("passphrase"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .expect("run parley");
        CliRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `parley ARGS`, which must succeed; returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args).await;
        assert!(
            run.ok,
            "{}: parley {args:?} failed:\n{}\n{}",
            self.name, run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs `parley --json ARGS`, which must succeed; returns its JSON.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("parley {args:?}: not JSON ({e}): {out}"))
    }

    fn sign_in_args<'a>(&'a self, command: &'a str, password: &'a str) -> Vec<&'a str> {
        vec![
            "--server",
            &self.server_url,
            "--ca-file",
            self.ca_file.to_str().unwrap(),
            command,
            &self.name,
            "--password-file",
            password,
        ]
    }

    /// `parley register NAME`: the account and its first device.
    pub async fn register(&self) {
        let password = self.secrets.join("password");
        self.ok(&self.sign_in_args("register", password.to_str().unwrap()))
            .await;
    }

    /// `parley login NAME` on this home (a new device). The one place a test signs in
    /// with the CLI: with a second factor on (see [`CliUser::enable_second_factor`]), the
    /// current code goes with `--totp-code`.
    pub async fn login(&self) {
        let password = self.secrets.join("password");
        let mut args = self.sign_in_args("login", password.to_str().unwrap());
        let code = std::fs::read_to_string(self.secrets.join("totp-secret"))
            .ok()
            .map(|secret| {
                // A step later than any code used before, with time left to use it.
                parley_tests::totp::code_now(secret.trim(), 0)
            });
        if let Some(code) = &code {
            args.extend(["--totp-code", code.as_str()]);
        }
        self.ok(&args).await;
    }

    /// `parley 2fa enable` as a person does it: reads the secret the CLI shows, types
    /// the code of the previous step (so a login in this step is no replay). Returns the
    /// secret, also kept beside the password for [`CliUser::login`].
    pub async fn enable_second_factor(&self) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        parley_tests::totp::with_time_left_in_step(20).await;
        let mut child = tokio::process::Command::new(parley_tests::process::parley_binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--home")
            .arg(&self.home)
            .arg("--passphrase-file")
            .arg(self.secrets.join("passphrase"))
            .args(["2fa", "enable"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run parley 2fa enable");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let secret = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = stdout.next_line().await.expect("read") {
                if let Some(secret) = line.trim().strip_prefix("or enter this secret by hand: ") {
                    return secret.to_owned();
                }
            }
            panic!("parley 2fa enable showed no secret");
        })
        .await
        .expect("parley 2fa enable shows its secret");
        let mut stdin = child.stdin.take().expect("stdin");
        let code = parley_tests::totp::code_now(&secret, -1);
        stdin
            .write_all(format!("{code}\n").as_bytes())
            .await
            .expect("type the code");
        drop(stdin);
        while stdout.next_line().await.expect("read").is_some() {}
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("parley 2fa enable ends")
            .expect("wait");
        assert!(status.success(), "parley 2fa enable failed");
        std::fs::write(self.secrets.join("totp-secret"), &secret).unwrap();
        secret
    }

    /// Losing the device: its whole CLI home (profile, session, message store) is gone.
    pub fn lose_device(&self) {
        std::fs::remove_dir_all(&self.home).expect("delete the CLI home");
    }
}

/// Runs PostgreSQL's `pg_dump` of the database at `url` (plain SQL) and returns it.
pub async fn pg_dump(url: &str) -> String {
    let bin = parley_homeserver::embedded_pg::find_bin_dir().expect("PostgreSQL binaries");
    let out = tokio::process::Command::new(bin.join("pg_dump"))
        .arg("--dbname")
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with any of `needles` in it (as text, or as the lowercase hex
/// a dump shows `bytea` in), with the needle found.
pub fn files_containing(dir: &Path, needles: &[&str]) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            for needle in needles {
                if text_contains(&text, needle) {
                    found.push((path.clone(), (*needle).to_owned()));
                }
            }
        }
    }
    found
}

/// Whether `haystack` has `needle` in it, as text or as lowercase hex.
pub fn text_contains(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle) || haystack.contains(&hex::encode(needle.as_bytes()))
}
