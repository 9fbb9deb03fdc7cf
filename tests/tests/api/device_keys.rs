//! The device key directory: each device's MLS signature key bound once by its own
//! homeserver, served to clients and (signed) to other servers, and enforced by the hub
//! on every leaf a commit adds or changes. The attacks here are a group member's: it
//! crafts its own MLS (openmls test clients) and submits through the real API.

use openmls::prelude::{KeyPackage, MlsGroup};
use parley_federation::device_keys;
use parley_sdk::Client;
use parley_specs::client_api::{LoginRequest, RegisterRequest};
use parley_specs::endpoints::federation::USER_DEVICES;
use parley_specs::groups_api::SubmitCommitRequest;
use parley_specs::keys_api::{
    ClaimKeyPackagesRequest, SignedDeviceKeys, UploadKeyPackagesRequest, UserDeviceKeys, UserDevices,
};
use parley_specs::{Base64Bytes, DeviceId, ErrorCode, GroupId, ServerName, UserId};
use parley_tests::TestServer;
use parley_tests::mls::{TestMlsDevice, forged_key_package, key_package_from};
use parley_tests::server::free_loopback_addr;
use rand::distr::{Alphanumeric, SampleString};

use crate::helpers::{
    PASSWORD, code, federated_pair, logged_in, login_request, published_keys, register_request, registered, speaking_as,
};

/// A device with its own MLS identity, whose KeyPackages are on its server (which bound
/// its key), and the group it created, if any.
struct Member {
    client: Client,
    user: UserId,
    device: DeviceId,
    mls: TestMlsDevice,
    group: Option<MlsGroup>,
}

impl Member {
    /// The first device of a new user `name` (or, with `new_account` false, another
    /// device of it), with `key_packages` uploaded.
    async fn new(server: &TestServer, name: &str, new_account: bool, key_packages: usize) -> Self {
        let (client, session) = if new_account {
            registered(server, name).await
        } else {
            logged_in(server, name).await
        };
        let mls = TestMlsDevice::new(&session.user_id, &session.device_id);
        if key_packages > 0 {
            let key_packages = (0..key_packages)
                .map(|_| Base64Bytes::from(mls.key_package(false)))
                .collect();
            client
                .upload_key_packages(&UploadKeyPackagesRequest { key_packages })
                .await
                .expect("upload");
        }
        Self {
            client,
            user: session.user_id,
            device: session.device_id,
            mls,
            group: None,
        }
    }

    /// Creates a group hubbed on `server` with this device as its only member.
    async fn create_group(&mut self, server: &TestServer) -> GroupId {
        let id = GroupId::parse(&format!("{}@{}", random(), server.server_name())).unwrap();
        let (group, request) = self.mls.create_group(&id);
        self.client.create_group(&request).await.expect("create");
        self.group = Some(group);
        id
    }

    /// Commits the addition of `key_packages`; on refusal the pending commit is dropped.
    async fn add(&mut self, group_id: &GroupId, key_packages: &[KeyPackage]) -> Result<(), parley_sdk::Error> {
        let group = self.group.as_mut().expect("in a group");
        let (commit, welcome) = self.mls.add(group, key_packages);
        self.submit(group_id, commit, Some(welcome)).await
    }

    /// Submits a commit made on this device's group; merges it when accepted, drops it
    /// when refused.
    async fn submit(
        &mut self,
        group_id: &GroupId,
        commit: Vec<u8>,
        welcome: Option<Vec<u8>>,
    ) -> Result<(), parley_sdk::Error> {
        let group_info = self.mls.pending_group_info(self.group.as_ref().expect("in a group"));
        let request = SubmitCommitRequest {
            txn_id: random(),
            commit: commit.into(),
            welcome: welcome.map(Into::into),
            group_info: group_info.into(),
        };
        let result = self.client.submit_commit(group_id, &request).await;
        let group = self.group.as_mut().expect("in a group");
        match &result {
            Ok(_) => group.merge_pending_commit(&self.mls.provider).expect("merge"),
            Err(_) => self.mls.discard_pending(group),
        }
        result.map(|_| ())
    }

    /// One claimed KeyPackage of each device of `user`, as a client checks them.
    async fn claim(&self, user: &UserId) -> Vec<KeyPackage> {
        self.client
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await
            .expect("claim")
            .key_packages
            .iter()
            .map(|k| key_package_from(k.key_package.as_slice()))
            .collect()
    }

    /// (epoch, number of member devices) as the hub tells this member.
    async fn group_state(&self, group_id: &GroupId) -> (u64, usize) {
        let summary = self.client.get_group(group_id).await.expect("group");
        (summary.epoch, summary.members.len())
    }
}

fn random() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 16)
}

/// Messages the hub stored for the group, and inbox entries of `device` anywhere.
async fn stored(server: &TestServer, group: &GroupId, device: &DeviceId) -> (i64, i64) {
    let messages = server
        .count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1",
            &[&group.as_str()],
        )
        .await;
    let entries = server
        .count("SELECT count(*) FROM inbox WHERE device_id = $1", &[&device.as_str()])
        .await;
    (messages, entries)
}

#[tokio::test]
async fn a_member_cannot_add_another_users_device_with_a_key_it_holds() {
    let server = TestServer::spawn().await;
    let mut alice = Member::new(&server, "alice", true, 2).await;
    let bob = Member::new(&server, "bob", true, 2).await;
    // carol's device never published a key; "NOSUCHDEVICE" is not bob's.
    let carol = Member::new(&server, "carol", true, 0).await;
    let group = alice.create_group(&server).await;

    let forgeries = [
        (
            bob.user.clone(),
            bob.device.clone(),
            "bob's real device with alice's key",
        ),
        (carol.user.clone(), carol.device.clone(), "a device without a key"),
        (
            bob.user.clone(),
            DeviceId::parse("NOSUCHDEVICE").unwrap(),
            "a device bob does not have",
        ),
    ];
    for (user, device, what) in forgeries {
        let refused = alice.add(&group, &[forged_key_package(&user, &device)]).await;
        assert_eq!(code(refused), ErrorCode::DeviceNotVouched, "{what}");
        assert_eq!(
            stored(&server, &group, &device).await,
            (0, 0),
            "{what}: nothing stored or delivered"
        );
    }
    assert_eq!(alice.group_state(&group).await, (0, 1), "the group is unchanged");

    // bob's own KeyPackage, claimed from his server, carries the key it vouches for.
    let real = alice.claim(&bob.user).await;
    alice.add(&group, &real).await.expect("bob's real device is added");
    assert_eq!(alice.group_state(&group).await, (1, 2));
}

#[tokio::test]
async fn a_member_cannot_add_another_servers_users_device_with_a_key_it_holds() {
    let pair = federated_pair().await;
    let mut alice = Member::new(&pair.a, "alice", true, 2).await;
    let bob = Member::new(&pair.b, "bob", true, 2).await;
    let group = alice.create_group(&pair.a).await;

    // The hub asks b.test, which vouches for another key for bob's device.
    let forged = forged_key_package(&bob.user, &bob.device);
    assert_eq!(code(alice.add(&group, &[forged]).await), ErrorCode::DeviceNotVouched);
    // A device b.test does not have: refused as well, now from the list just fetched.
    let made_up = forged_key_package(&bob.user, &DeviceId::parse("NOSUCHDEVICE").unwrap());
    assert_eq!(code(alice.add(&group, &[made_up]).await), ErrorCode::DeviceNotVouched);
    assert_eq!(alice.group_state(&group).await, (0, 1), "the group is unchanged");
    assert_eq!(
        pair.a
            .count(
                "SELECT count(*) FROM federation_queue WHERE destination = 'b.test'",
                &[]
            )
            .await,
        0,
        "nothing is queued for b.test"
    );
    let stored_on_a = pair
        .a
        .count(
            "SELECT count(*) FROM group_messages WHERE group_id = $1",
            &[&group.as_str()],
        )
        .await;
    assert_eq!(stored_on_a, 0);

    // bob's real device is vouched for, from the list the hub cached.
    let real = alice.claim(&bob.user).await;
    alice.add(&group, &real).await.expect("bob's real device is added");

    // A device bob logs in after the hub cached his list is unknown to it: the hub asks
    // b.test again and adds it.
    let phone = Member::new(&pair.b, "bob", false, 1).await;
    let phone_package: Vec<_> = alice
        .claim(&bob.user)
        .await
        .into_iter()
        .filter(|k| {
            let identity = k.leaf_node().credential().serialized_content().to_vec();
            identity == parley_specs::mls::credential_identity(&phone.user, &phone.device)
        })
        .collect();
    assert_eq!(phone_package.len(), 1);
    alice
        .add(&group, &phone_package)
        .await
        .expect("bob's new device is added");
    assert_eq!(alice.group_state(&group).await, (2, 3));
}

#[tokio::test]
async fn a_commit_cannot_rename_the_committers_leaf_to_another_users_device() {
    let server = TestServer::spawn().await;
    let mut alice = Member::new(&server, "alice", true, 1).await;
    let bob = Member::new(&server, "bob", true, 1).await;
    let group = alice.create_group(&server).await;

    // alice's update path gives her leaf bob's device's name, with a key she holds. A
    // Welcome rides along, as if the renamed leaf were a new member to deliver to.
    let impostor = TestMlsDevice::new(&bob.user, &bob.device);
    let rename = alice.mls.rename_commit(alice.group.as_mut().unwrap(), &impostor);
    let welcome = {
        let other = TestMlsDevice::new(&alice.user, &alice.device);
        let (mut scratch, _) = other.create_group(&GroupId::parse(&format!("{}@elsewhere.test", random())).unwrap());
        other.add(&mut scratch, &[forged_key_package(&bob.user, &bob.device)]).1
    };
    let refused = alice.submit(&group, rename, Some(welcome)).await;
    assert_eq!(code(refused), ErrorCode::DeviceNotVouched);

    let summary = alice.client.get_group(&group).await.expect("alice is still its member");
    assert_eq!(summary.epoch, 0);
    assert_eq!(summary.members.len(), 1);
    assert_eq!(summary.members[0].device_id, alice.device);
    assert_eq!(
        stored(&server, &group, &bob.device).await,
        (0, 0),
        "bob's device got nothing"
    );
}

#[tokio::test]
async fn a_device_has_one_leaf_and_the_size_limit_counts_leaves() {
    let server = TestServer::spawn_with(|c| c.limits.max_group_size = 4).await;
    let mut alice = Member::new(&server, "alice", true, 1).await;
    let bob = Member::new(&server, "bob", true, 3).await;
    let group = alice.create_group(&server).await;
    let forged = || forged_key_package(&bob.user, &bob.device);

    // Within the size limit: two leaves for bob's one device.
    assert_eq!(
        code(alice.add(&group, &[forged(), forged()]).await),
        ErrorCode::DuplicateDevice
    );
    let mut with_real = alice.claim(&bob.user).await;
    with_real.push(forged());
    assert_eq!(code(alice.add(&group, &with_real).await), ErrorCode::DuplicateDevice);
    // Five leaves of one identity make six leaves in all: over 4, although two devices.
    let five: Vec<_> = (0..5).map(|_| forged()).collect();
    assert_eq!(code(alice.add(&group, &five).await), ErrorCode::GroupFull);
    assert_eq!(alice.group_state(&group).await, (0, 1), "the group is unchanged");

    // A device already in the group cannot get a second leaf either.
    let real = alice.claim(&bob.user).await;
    alice.add(&group, &real).await.expect("bob's device is added once");
    assert_eq!(code(alice.add(&group, &[forged()]).await), ErrorCode::DuplicateDevice);
    assert_eq!(alice.group_state(&group).await, (1, 2));
}

#[tokio::test]
async fn a_leaf_of_a_made_up_server_is_refused_and_nothing_is_queued_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_federating(dir.path()).await;
    let mut alice = Member::new(&server, "alice", true, 1).await;
    let group = alice.create_group(&server).await;

    // A loopback port nobody listens on: a server that cannot be asked to vouch (and, an
    // IP address that is not a configured peer, is not even dialled).
    let nowhere = format!("x@127.0.0.1:{}", free_loopback_addr().port());
    let ghost = forged_key_package(&UserId::parse(&nowhere).unwrap(), &DeviceId::parse("GHOST").unwrap());
    let refused = alice.add(&group, &[ghost]).await;
    assert_eq!(code(refused), ErrorCode::ServerNotAllowed);
    assert_eq!(alice.group_state(&group).await, (0, 1), "the group is unchanged");
    assert_eq!(server.count("SELECT count(*) FROM federation_queue", &[]).await, 0);
    assert_eq!(
        server
            .count(
                "SELECT count(*) FROM group_messages WHERE group_id = $1",
                &[&group.as_str()]
            )
            .await,
        0
    );

    // A server that does not federate at all adds no one of another server.
    let lone = TestServer::spawn().await;
    let mut dora = Member::new(&lone, "dora", true, 1).await;
    let lone_group = dora.create_group(&lone).await;
    let stranger = forged_key_package(&UserId::parse("eve@b.test").unwrap(), &DeviceId::parse("EVE").unwrap());
    assert_eq!(
        code(dora.add(&lone_group, &[stranger]).await),
        ErrorCode::ServerNotAllowed
    );
}

#[tokio::test]
async fn a_devices_key_is_bound_once_and_every_upload_and_new_group_must_carry_it() {
    let server = TestServer::spawn().await;
    let (client, session) = registered(&server, "frank").await;
    let first = TestMlsDevice::new(&session.user_id, &session.device_id);
    let second = TestMlsDevice::new(&session.user_id, &session.device_id);
    let upload = |packages: Vec<Vec<u8>>| UploadKeyPackagesRequest {
        key_packages: packages.into_iter().map(Base64Bytes::from).collect(),
    };

    // A batch disagreeing with itself binds nothing.
    let mixed = client
        .upload_key_packages(&upload(vec![first.key_package(false), second.key_package(false)]))
        .await;
    let err = mixed.expect_err("mixed keys");
    assert_eq!(err.code(), Some(ErrorCode::SignatureKeyMismatch), "{err}");
    assert!(err.to_string().contains("key package 1"), "{err}");
    let key: i64 = server
        .count("SELECT count(*) FROM devices WHERE mls_signature_key IS NOT NULL", &[])
        .await;
    assert_eq!(key, 0, "nothing bound");

    // The first upload binds the key; another key is refused afterwards.
    client
        .upload_key_packages(&upload(vec![first.key_package(false)]))
        .await
        .expect("first upload");
    let other = client
        .upload_key_packages(&upload(vec![second.key_package(true)]))
        .await;
    assert_eq!(code(other), ErrorCode::SignatureKeyMismatch);
    assert_eq!(client.key_package_count().await.unwrap().available, 1);
    let again = client
        .upload_key_packages(&upload(vec![first.key_package(true)]))
        .await
        .expect("the bound key still uploads");
    assert!(again.last_resort);

    // A new group's leaf must carry it too.
    let id = |server: &TestServer| GroupId::parse(&format!("{}@{}", random(), server.server_name())).unwrap();
    let (_, with_other_key) = second.create_group(&id(&server));
    assert_eq!(
        code(client.create_group(&with_other_key).await),
        ErrorCode::SignatureKeyMismatch
    );
    let (_, with_own_key) = first.create_group(&id(&server));
    client.create_group(&with_own_key).await.expect("created");

    // A device that creates a group before uploading anything binds its key that way.
    let (phone, phone_session) = logged_in(&server, "frank").await;
    let phone_mls = TestMlsDevice::new(&phone_session.user_id, &phone_session.device_id);
    let (_, request) = phone_mls.create_group(&id(&server));
    phone.create_group(&request).await.expect("created");
    let impostor = TestMlsDevice::new(&phone_session.user_id, &phone_session.device_id);
    let refused = phone
        .upload_key_packages(&upload(vec![impostor.key_package(false)]))
        .await;
    assert_eq!(code(refused), ErrorCode::SignatureKeyMismatch);
}

fn key_of(list: &UserDeviceKeys, device: &DeviceId) -> Option<Vec<u8>> {
    list.key_of(device).map(<[u8]>::to_vec)
}

#[tokio::test]
async fn the_directory_serves_own_users_and_other_servers_users_with_their_servers_signature() {
    let pair = federated_pair().await;
    let bob = Member::new(&pair.b, "bob", true, 1).await;
    // A second device of bob's without a key: left out.
    let (_, idle) = logged_in(&pair.b, "bob").await;
    let alice = Member::new(&pair.a, "alice", true, 1).await;
    let bob_key = bob.mls.signer.public().to_vec();

    // From bob's own server: its store, signed by it.
    let local: UserDevices = bob.client.user_devices(&bob.user).await.expect("bob's devices");
    assert_eq!(local.device_keys.user_id, bob.user);
    assert_eq!(local.device_keys.devices.len(), 1, "{local:?}");
    assert_eq!(key_of(&local.device_keys, &bob.device), Some(bob_key.clone()));
    assert_eq!(key_of(&local.device_keys, &idle.device_id), None);
    let b_keys = published_keys("b.test", pair.b_dir.path());
    let signed = |answer: UserDevices| SignedDeviceKeys {
        device_keys: answer.device_keys,
        server_signature: answer.server_signature.expect("signed by b.test"),
        transparency: None,
    };
    device_keys::verify(signed(local.clone()), &b_keys).expect("b.test's signature verifies");

    // Through alice's server: fetched from b.test over federation, signature relayed.
    let remote = alice.client.user_devices(&bob.user).await.expect("over federation");
    assert_eq!(remote.device_keys, local.device_keys);
    let verified = device_keys::verify(signed(remote.clone()), &b_keys).expect("verifies as relayed");
    assert_eq!(verified.device_keys().key_of(&bob.device), Some(bob_key.as_slice()));
    // Anyone else's keys do not verify it.
    let a_keys = published_keys("a.test", pair.a_dir.path());
    assert!(device_keys::verify(signed(remote), &a_keys).is_err());

    for missing in ["nobody@b.test", "nobody@a.test"] {
        let user = UserId::parse(missing).unwrap();
        assert_eq!(
            code(alice.client.user_devices(&user).await),
            ErrorCode::NotFound,
            "{missing}"
        );
    }
    let lone = TestServer::spawn().await;
    let dora = Member::new(&lone, "dora", true, 1).await;
    let unsigned = dora.client.user_devices(&dora.user).await.expect("dora's devices");
    assert_eq!(unsigned.device_keys.devices.len(), 1);
    assert!(
        unsigned.server_signature.is_none(),
        "a server without federation has no key to sign with"
    );
    assert_eq!(code(dora.client.user_devices(&bob.user).await), ErrorCode::NotFound);

    // Over federation, b.test vouches for its own users only.
    let as_a = speaking_as("a.test", pair.a_dir.path(), &[&pair.b]);
    let ask_b = |user: &str| {
        let (client, keys) = &as_a;
        let path = USER_DEVICES.path_with(&[user]);
        async move {
            client
                .send(
                    keys,
                    reqwest::Method::GET,
                    &ServerName::parse("b.test").unwrap(),
                    &path,
                    Vec::new(),
                    parley_homeserver::remote::now_ms(),
                )
                .await
                .unwrap()
        }
    };
    let answer = ask_b(bob.user.as_str()).await;
    assert_eq!(answer.status(), 200);
    let direct: SignedDeviceKeys = answer.json().await.unwrap();
    device_keys::verify(direct, &b_keys).expect("verifies");
    for (user, status, error) in [
        (alice.user.as_str(), 404, "not_found"),
        ("nobody@b.test", 404, "not_found"),
        ("not a user", 400, "invalid_param"),
    ] {
        let answer = ask_b(user).await;
        assert_eq!(answer.status().as_u16(), status, "{user}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"], error, "{user}");
    }
}

#[tokio::test]
async fn register_and_login_bind_the_key_they_carry_at_once() {
    let server = TestServer::spawn().await;
    let key = |b: u8| Some(Base64Bytes::from(vec![b; 32]));
    let request = RegisterRequest {
        signature_key: key(7),
        ..register_request("kira")
    };
    let mut client = server.sdk();
    let session = client.register(&request).await.expect("register with a key");
    client.set_session(&session);
    let listed = client.user_devices(&session.user_id).await.expect("directory");
    let [entry] = listed.device_keys.devices.as_slice() else {
        panic!("one device: {listed:?}");
    };
    assert_eq!(
        (&entry.device_id, entry.signature_key.as_slice()),
        (&session.device_id, &[7u8; 32][..])
    );
    // The key is bound: a KeyPackage with another key is refused.
    let other = TestMlsDevice::new(&session.user_id, &session.device_id);
    let upload = UploadKeyPackagesRequest {
        key_packages: vec![other.key_package(false).into()],
    };
    assert_eq!(
        code(client.upload_key_packages(&upload).await),
        ErrorCode::SignatureKeyMismatch
    );

    // Login binds too; a key that is not 32 bytes is refused before anything is created.
    let login = LoginRequest {
        signature_key: key(9),
        ..login_request("kira", PASSWORD)
    };
    let phone = server.sdk().login(&login).await.expect("login with a key");
    let listed = client.user_devices(&session.user_id).await.expect("directory");
    assert!(
        listed
            .device_keys
            .devices
            .iter()
            .any(|d| d.device_id == phone.device_id && d.signature_key.as_slice() == [9u8; 32]),
        "{listed:?}"
    );
    for bad in [vec![1u8; 31], vec![1u8; 33], Vec::new()] {
        let short = LoginRequest {
            signature_key: Some(bad.clone().into()),
            ..login_request("kira", PASSWORD)
        };
        assert_eq!(
            code(server.sdk().login(&short).await),
            ErrorCode::InvalidParam,
            "{}",
            bad.len()
        );
        let register = RegisterRequest {
            signature_key: Some(bad.into()),
            ..register_request("lena")
        };
        assert_eq!(code(server.sdk().register(&register).await), ErrorCode::InvalidParam);
    }
    assert_eq!(client.devices().await.expect("devices").devices.len(), 2);
}
