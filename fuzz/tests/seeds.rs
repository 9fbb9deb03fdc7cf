//! Makes the fixtures (`fuzz/fixtures/`) and the seed corpora (`fuzz/corpus/<target>/`)
//! from the real code paths: a server key file as the server writes it, headers, key
//! documents, device lists and messages signed with it, KeyPackages, groups, commits and
//! Welcomes made with openmls the way a device makes them, and the hub's stored state of
//! the group the commit target submits to. Run it when a format changes, then commit the
//! result (it replaces every `valid-*` seed and the fixtures):
//!
//! ```text
//! cargo test -p parley-fuzz --test seeds -- --ignored
//! cargo test -p parley-fuzz --test corpus
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{LeafNodeParameters, MlsMessageBodyIn, MlsMessageIn, ProposalStore, PublicGroup};
use openmls_memory_storage::MemoryStorage;
use openmls_rust_crypto::RustCrypto;
use parley_federation::key_document::KeyDocument;
use parley_federation::request_auth::authorization;
use parley_federation::{ServerKeyring, device_keys, hub_signature};
use parley_fuzz::{DAY_MS, DESTINATION, GROUP, NOW_MS, ORIGIN, OWNER_DEVICE, OWNER_USER, REQUEST, join};
use parley_homeserver::hub::mls;
use parley_homeserver::hub::public_state::{PublicState, serialize_storage};
use parley_specs::federation_api::{OrderedKind, OrderedMessage};
use parley_specs::groups_api::GroupMember;
use parley_specs::keys_api::{DeviceKey, UploadKeyPackagesRequest, UserDeviceKeys};
use parley_specs::{DeviceId, GroupId, ServerName, UserId};
use parley_tests::mls::{TestMlsDevice, key_package_from, serialize};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// Replaces the `valid-*` seeds of `target` (other seeds stay).
fn seeds(target: &str, files: &[(&str, Vec<u8>)]) {
    let dir = root().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("valid-"))
        {
            std::fs::remove_file(path).expect("remove an old seed");
        }
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
}

fn name(s: &str) -> ServerName {
    ServerName::parse(s).unwrap()
}

fn member(user: &str, device: &str) -> GroupMember {
    GroupMember {
        user_id: UserId::parse(user).unwrap(),
        device_id: DeviceId::parse(device).unwrap(),
    }
}

fn device(m: &GroupMember) -> TestMlsDevice {
    TestMlsDevice::new(&m.user_id, &m.device_id)
}

#[test]
#[ignore = "writes fuzz/fixtures and fuzz/corpus; run by hand when a format changes"]
fn make_fixtures_and_seeds() {
    // The server key: one retired key (so documents list old_verify_keys) and the current one.
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("server.key");
    let mut keyring = ServerKeyring::generate();
    keyring.rotate(NOW_MS - 60_000, false);
    keyring.save(&key_path).unwrap();
    let key_file = std::fs::read(&key_path).unwrap();
    std::fs::write(root().join("fixtures/server-key.json"), &key_file).unwrap();
    let keyring = ServerKeyring::load(&key_path).unwrap();
    seeds("server_key_file", &[("valid-key-file", key_file)]);

    let header = authorization(&keyring, &name(ORIGIN), &name(DESTINATION), &REQUEST, NOW_MS);
    seeds("request_auth", &[("valid-header", header.into_bytes())]);

    let document = KeyDocument::signed(&name(ORIGIN), &keyring, NOW_MS, DAY_MS);
    seeds(
        "key_document",
        &[
            ("valid-document", serde_json::to_vec(&document).unwrap()),
            ("valid-document-pretty", serde_json::to_vec_pretty(&document).unwrap()),
        ],
    );
    seeds(
        "canonical_json",
        &[
            ("valid-key-document", serde_json::to_vec_pretty(&document).unwrap()),
            (
                "valid-values",
                br#"{"z": [1, -2, 3.5, 1e300, -0.0, 18446744073709551615, -9223372036854775808], "a": {"s": "\u00e9\n\"\\\ud83d\ude00", "t": true, "f": false, "n": null}}"#.to_vec(),
            ),
        ],
    );

    let alice = member(OWNER_USER, OWNER_DEVICE);
    let bob = member("bob@b.test", "BOB1");
    let carol = member("carol@a.test", "CAROL1");
    let (alice_mls, bob_mls, carol_mls) = (device(&alice), device(&bob), device(&carol));

    let list = UserDeviceKeys {
        user_id: alice.user_id.clone(),
        devices: vec![
            DeviceKey {
                device_id: alice.device_id.clone(),
                signature_key: alice_mls.credential.signature_key.as_slice().to_vec().into(),
            },
            DeviceKey {
                device_id: DeviceId::parse("ALICE2").unwrap(),
                signature_key: vec![7; 32].into(),
            },
        ],
    };
    seeds(
        "device_keys",
        &[(
            "valid-two-devices",
            serde_json::to_vec(&device_keys::sign(&keyring, list, NOW_MS)).unwrap(),
        )],
    );

    let (one_time, last_resort) = (alice_mls.key_package(false), alice_mls.key_package(true));
    seeds(
        "key_package",
        &[
            ("valid-one-time", one_time.clone()),
            ("valid-last-resort", last_resort.clone()),
            // Refused by openmls 0.9.2 (issue 15, item 15), a seed all the same.
            ("greased", alice_mls.greased_key_package(true)),
        ],
    );
    let upload = UploadKeyPackagesRequest {
        key_packages: vec![one_time.into(), last_resort.into()],
    };
    seeds(
        "key_package_upload",
        &[("valid-two-packages", serde_json::to_vec(&upload).unwrap())],
    );

    let example = std::fs::read(root().join("../deploy/homeserver.example.toml")).unwrap();
    let mut with_env = example.clone();
    with_env.extend_from_slice(
        b"\n# env\nPARLEY_LIMITS__MAX_BODY_BYTES=1000\nPARLEY_DATABASE__URL=postgres://u@localhost/db\nPARLEY_PROFILE=other-program\n",
    );
    seeds(
        "config",
        &[("valid-example", example), ("valid-example-with-env", with_env)],
    );

    // The group: alice creates it at the hub, adds bob (epoch 1); the hub's state after
    // that commit is the commit target's fixture.
    let group_id = GroupId::parse(GROUP).unwrap();
    let (mut alice_group, create) = alice_mls.create_group(&group_id);
    seeds(
        "mls_create_group",
        &[(
            "valid-create",
            join(create.group_info.as_slice(), create.ratchet_tree.as_slice()),
        )],
    );
    let info = mls::parse_stored_group_info(create.group_info.as_slice()).unwrap();
    let tree = mls::parse_ratchet_tree(create.ratchet_tree.as_slice()).unwrap();
    let storage = MemoryStorage::default();
    let (group, _) =
        PublicGroup::from_external(&RustCrypto::default(), &storage, tree, info, ProposalStore::new()).unwrap();
    let mut hub = PublicState { storage, group };

    let (add_bob, welcome_bob) = alice_mls.add(&mut alice_group, &[key_package_from(&bob_mls.key_package(false))]);
    let info_after_bob = alice_mls.pending_group_info(&alice_group);
    let commit = mls::parse_commit(&add_bob, &group_id).unwrap();
    let processed = hub.group.process_message(&RustCrypto::default(), commit).unwrap();
    let openmls::prelude::ProcessedMessageContent::StagedCommitMessage(staged) = processed.into_content() else {
        panic!("not a commit");
    };
    hub.group.merge_commit(&hub.storage, *staged).unwrap();
    mls::check_group_info(&info_after_bob, &hub.group, &alice).unwrap();
    std::fs::write(
        root().join("fixtures/commit-group.state"),
        serialize_storage(&hub.storage).unwrap(),
    )
    .unwrap();
    alice_group.merge_pending_commit(&alice_mls.provider).unwrap();
    let mut bob_group = bob_mls.join(&welcome_bob);
    let hub_tree = mls::export_tree(&hub.group).unwrap();

    // Commits against that state, each with the GroupInfo of the epoch it creates.
    let (add_carol, welcome_carol) =
        alice_mls.add(&mut alice_group, &[key_package_from(&carol_mls.key_package(false))]);
    let info_after_carol = alice_mls.pending_group_info(&alice_group);
    alice_mls.discard_pending(&mut alice_group);
    let update = bob_group
        .self_update(&bob_mls.provider, &bob_mls.signer, LeafNodeParameters::default())
        .unwrap();
    let bob_update = serialize(update.commit());
    let info_after_update = bob_mls.pending_group_info(&bob_group);
    bob_mls.discard_pending(&mut bob_group);
    let alice2 = device(&member(OWNER_USER, "ALICE2"));
    let external = alice2.external_join(&info_after_bob, &hub_tree);
    seeds(
        "mls_commit",
        &[
            ("valid-add-carol", join(&add_carol, &info_after_carol)),
            ("valid-bob-update", join(&bob_update, &info_after_update)),
            ("valid-external-join", join(&external.commit, &external.group_info)),
        ],
    );

    let application = alice_mls.encrypt(&mut alice_group, b"hello, fuzzer");
    seeds(
        "mls_message",
        &[
            ("valid-commit", add_carol.clone()),
            ("valid-external-commit", external.commit.clone()),
            ("valid-application", application.clone()),
            ("valid-welcome", welcome_carol.clone()),
            ("valid-group-info", info_after_bob.clone()),
            ("valid-ratchet-tree", hub_tree),
        ],
    );
    assert!(matches!(
        MlsMessageIn::tls_deserialize_exact(&welcome_carol).unwrap().extract(),
        MlsMessageBodyIn::Welcome(_)
    ));

    let ordered = |seq, kind, payload: &[u8], welcome: Option<&[u8]>| OrderedMessage {
        group_id: group_id.clone(),
        seq,
        epoch: 1,
        kind,
        sender: alice.clone(),
        payload: payload.to_vec().into(),
        welcome: welcome.map(|w| w.to_vec().into()),
        members: (kind == OrderedKind::Commit).then(|| vec![alice.clone(), bob.clone(), carol.clone()]),
        sent_at_ms: NOW_MS - 10,
        expires_at_ms: (kind == OrderedKind::Application).then_some(NOW_MS + DAY_MS),
    };
    let signed = |m| serde_json::to_vec(&hub_signature::sign(&keyring, m, NOW_MS)).unwrap();
    seeds(
        "hub_signature",
        &[
            (
                "valid-commit",
                signed(ordered(2, OrderedKind::Commit, &add_carol, Some(&welcome_carol))),
            ),
            (
                "valid-application",
                signed(ordered(3, OrderedKind::Application, &application, None)),
            ),
        ],
    );
    transparency_seeds(&keyring);
}

#[test]
#[ignore = "writes fuzz/corpus/transparency_lookup; run by hand when the format changes"]
fn make_transparency_seeds() {
    // Loaded from an owner-only copy: the server refuses a key file others can read.
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("server.key");
    std::fs::copy(root().join("fixtures/server-key.json"), &key_path).unwrap();
    std::fs::set_permissions(&key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    transparency_seeds(&ServerKeyring::load(&key_path).unwrap());
}

/// A lookup proof of alice's devices in a.test's key directory (real akd), its root
/// signed with the fixture key at `NOW_MS`.
fn transparency_seeds(keyring: &ServerKeyring) {
    let alice = UserId::parse(OWNER_USER).unwrap();
    let list = UserDeviceKeys {
        user_id: alice,
        devices: vec![DeviceKey {
            device_id: DeviceId::parse(OWNER_DEVICE).unwrap(),
            signature_key: vec![9; 32].into(),
        }],
    };
    let lookup = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let directory = parley_tests::transparency::MemoryDirectory::new().await;
        directory.publish_at(&list, keyring, NOW_MS).await
    });
    seeds(
        "transparency_lookup",
        &[("valid-one-device", serde_json::to_vec(&lookup).unwrap())],
    );
}
