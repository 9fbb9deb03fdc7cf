//! A homeserver's client API that a malicious hub or homeserver stands behind: a small
//! HTTPS server on loopback (certificate from the test CA) that serves one device exactly
//! what the test puts in its inbox — Welcomes and commits crafted with openmls that a real
//! hub would refuse — and the device lists the test sets (signed as the users' servers
//! would sign them). It keeps the KeyPackages the device uploads, so a test can add the
//! device to a group, and counts the device-list lookups.
//!
//! Only what a receiving `Messenger` uses is served: the KeyPackage count and upload,
//! the inbox (long-poll reads answer at once) and its acknowledgement, and users' device
//! lists. The inbox WebSocket answers 404, so the SDK long-polls.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use parley_federation::ServerKeyring;
use parley_federation::device_keys::sign;
use parley_federation::server_key::encode_public_key;
use parley_sdk::{Client, Trust};
use parley_specs::endpoints::client;
use parley_specs::groups_api::{AckRequest, GroupMember, InboxEntry, InboxEntryKind, InboxPage, InboxQuery};
use parley_specs::keys_api::{
    DeviceKey, KeyPackageCount, ServerVerifyKey, UploadKeyPackagesRequest, UserDeviceKeys, UserDevices,
};
use parley_specs::{DeviceId, GroupId, ServerName, UserId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::server::{ca_file, issue_cert};
use crate::transparency::MemoryDirectory;

#[derive(Default)]
struct FakeState {
    /// One-time KeyPackages uploaded and not taken by the test.
    key_packages: Vec<Vec<u8>>,
    last_resort: bool,
    inbox: Vec<InboxEntry>,
    next_cursor: i64,
    acked_up_to: i64,
    lists: HashMap<String, UserDevices>,
    /// Every user whose devices were asked for, in order.
    lookups: Vec<String>,
}

/// See the module documentation.
pub struct FakeClientApi {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    handle: ServerHandle,
    /// A real key directory per server whose users' lists it serves (in memory), for
    /// real lookup proofs.
    directories: tokio::sync::Mutex<HashMap<ServerName, MemoryDirectory>>,
}

impl FakeClientApi {
    pub async fn start() -> Self {
        let issued = issue_cert(&["localhost", "127.0.0.1"]);
        let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(FakeState {
            next_cursor: 1,
            ..FakeState::default()
        }));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(client::KEY_PACKAGE_COUNT.path, web::get().to(count))
                .route(client::UPLOAD_KEY_PACKAGES.path, web::post().to(upload))
                .route(client::READ_INBOX.path, web::get().to(read_inbox))
                .route(client::ACK_INBOX.path, web::post().to(ack))
                .route(client::USER_DEVICES.path, web::get().to(user_devices))
                // The user's conversations its device is not in (`?of=user`): none here.
                .route(
                    client::LIST_GROUPS.path,
                    web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"groups": []})) }),
                )
                .default_service(web::to(|| async {
                    HttpResponse::NotFound().json(serde_json::json!({"error": "not_found", "message": "not served"}))
                }))
        })
        .workers(1)
        .listen_rustls_0_23(listener, tls)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("https://127.0.0.1:{}", addr.port()),
            state,
            handle,
            directories: Default::default(),
        }
    }

    /// A client of this server, logged in (any token is taken).
    pub fn client(&self) -> Client {
        Client::new(self.url.parse().unwrap(), Trust::CaFile(ca_file()))
            .unwrap()
            .with_access_token("fake-token")
    }

    /// One of the KeyPackages the device uploaded (for the test to add it to a group).
    pub fn take_key_package(&self) -> Vec<u8> {
        self.state
            .lock()
            .unwrap()
            .key_packages
            .pop()
            .expect("the device uploaded a KeyPackage")
    }

    /// Puts an entry in the device's inbox, as a hub delivering it would.
    pub fn deliver(&self, kind: InboxEntryKind, group_id: &GroupId, seq: i64, sender: &GroupMember, payload: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        let cursor = state.next_cursor;
        state.next_cursor += 1;
        state.inbox.push(InboxEntry {
            cursor,
            kind,
            group_id: group_id.clone(),
            seq,
            epoch: 0,
            sender: sender.clone(),
            payload: Some(payload.into()),
            sent_at: OffsetDateTime::now_utc(),
            expires_at: None,
        });
    }

    /// Serves `user`'s devices with these keys, signed by `server_key` as the user's
    /// server signs them (and with that key, as a homeserver relays it).
    /// The list is published in the server's key directory (a new epoch) and served
    /// with its lookup proof.
    pub async fn set_devices(&self, user: &UserId, devices: &[(DeviceId, Vec<u8>)], server_key: &ServerKeyring) {
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        self.set_devices_signed_at(user, devices, server_key, now_ms).await;
    }

    /// `set_devices` with the list signed at `signed_at_ms` (an old list, replayed).
    pub async fn set_devices_signed_at(
        &self,
        user: &UserId,
        devices: &[(DeviceId, Vec<u8>)],
        server_key: &ServerKeyring,
        signed_at_ms: i64,
    ) {
        let list = UserDeviceKeys {
            user_id: user.clone(),
            devices: devices
                .iter()
                .map(|(device_id, key)| DeviceKey {
                    device_id: device_id.clone(),
                    signature_key: key.clone().into(),
                })
                .collect(),
        };
        let transparency = {
            let mut directories = self.directories.lock().await;
            let server = user.server_name();
            if !directories.contains_key(&server) {
                directories.insert(server.clone(), MemoryDirectory::new().await);
            }
            directories[&server].publish(&list, server_key).await
        };
        let signed = sign(server_key, list, signed_at_ms);
        let answer = UserDevices {
            device_keys: signed.device_keys,
            server_signature: Some(signed.server_signature),
            server_key: Some(ServerVerifyKey {
                key_id: server_key.key_id().as_str().to_owned(),
                key: encode_public_key(&server_key.public_key()),
            }),
            transparency: Some(transparency),
        };
        self.state.lock().unwrap().lists.insert(user.to_string(), answer);
    }

    /// The answer served for `user`.
    pub fn answer(&self, user: &UserId) -> UserDevices {
        self.state.lock().unwrap().lists[user.as_str()].clone()
    }

    /// Serves `answer` for `user`.
    pub fn set_answer(&self, user: &UserId, answer: UserDevices) {
        self.state.lock().unwrap().lists.insert(user.to_string(), answer);
    }

    /// Changes the answer served for `user` (to tamper with its proof, its root...).
    pub fn edit_devices(&self, user: &UserId, edit: impl FnOnce(&mut UserDevices)) {
        edit(
            self.state
                .lock()
                .unwrap()
                .lists
                .get_mut(user.as_str())
                .expect("set_devices first"),
        );
    }

    /// How many device lists were asked for so far.
    pub fn lookups(&self) -> usize {
        self.state.lock().unwrap().lookups.len()
    }

    /// Whether every entry delivered was acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.acked_up_to >= state.next_cursor - 1
    }
}

impl Drop for FakeClientApi {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

type State = web::Data<Mutex<FakeState>>;

async fn count(state: State) -> HttpResponse {
    let state = state.lock().unwrap();
    HttpResponse::Ok().json(KeyPackageCount {
        available: state.key_packages.len() as i64,
        last_resort: state.last_resort,
        ..KeyPackageCount::default()
    })
}

async fn upload(state: State, body: web::Json<UploadKeyPackagesRequest>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    for package in &body.key_packages {
        // The last-resort one is told apart by its extension; keeping one-time ones is enough.
        if crate::mls::key_package_from(package.as_slice()).last_resort() {
            state.last_resort = true;
        } else {
            state.key_packages.push(package.as_slice().to_vec());
        }
    }
    HttpResponse::Ok().json(KeyPackageCount {
        available: state.key_packages.len() as i64,
        last_resort: state.last_resort,
        ..KeyPackageCount::default()
    })
}

async fn read_inbox(state: State, query: web::Query<InboxQuery>) -> HttpResponse {
    let state = state.lock().unwrap();
    let after = query.after.unwrap_or(0).max(state.acked_up_to);
    let limit = query.limit.unwrap_or(100) as usize;
    let entries: Vec<InboxEntry> = state
        .inbox
        .iter()
        .filter(|e| e.cursor > after)
        .take(limit)
        .cloned()
        .collect();
    let next_cursor = entries.last().map_or(after, |e| e.cursor);
    HttpResponse::Ok().json(InboxPage {
        entries,
        next_cursor,
        missed: None,
    })
}

async fn ack(state: State, body: web::Json<AckRequest>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.acked_up_to = state.acked_up_to.max(body.up_to);
    HttpResponse::NoContent().finish()
}

async fn user_devices(state: State, path: web::Path<String>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let user = path.into_inner();
    state.lookups.push(user.clone());
    match state.lists.get(&user) {
        Some(list) => HttpResponse::Ok().json(list),
        None => HttpResponse::NotFound()
            .json(serde_json::json!({"error": "not_found", "message": format!("no user {user}")})),
    }
}
