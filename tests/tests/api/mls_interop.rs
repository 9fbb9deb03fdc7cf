//! A client built on a second MLS implementation (AWS's `mls-rs`) speaks to the hub: its
//! KeyPackage is uploaded and claimed like any device's, it is added with a Welcome that
//! lacks the ratchet-tree extension, fetches the tree from the hub's group-info endpoint,
//! joins, and sends and receives through the hub. An SDK device added with the same
//! Welcome fetches the tree the same way.

use mls_rs::client_builder::MlsConfig;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::mls_rs_codec::MlsEncode;
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider, ExtensionList, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use openmls::prelude::{GroupId as MlsGroupId, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup};
use parley_specs::groups_api::{InboxEntryKind, InboxQuery, SubmitCommitRequest, SubmitMessageRequest};
use parley_specs::keys_api::{ClaimKeyPackagesRequest, UploadKeyPackagesRequest};
use parley_specs::mls::credential_identity;
use parley_specs::{DeviceId, GroupId, UserId};
use parley_tests::TestServer;
use parley_tests::mls::{CIPHERSUITE, Processed, TestMlsDevice, key_package_from, serialize};

use crate::helpers::{device, joined, signed_in, sync_until};

const HELLO: &[u8] = br#"{"type":"text","body":"hello from openmls"}"#;
const REPLY: &[u8] = br#"{"type":"text","body":"hello from mls-rs"}"#;

/// The profile's ciphersuite, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, in mls-rs.
const MLS_RS_SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

fn mls_rs_client(user: &UserId, device: &DeviceId) -> mls_rs::Client<impl MlsConfig> {
    let crypto = RustCryptoProvider::default();
    let suite = crypto.cipher_suite_provider(MLS_RS_SUITE).expect("suite");
    let (secret, public) = suite.signature_key_generate().expect("signature key");
    let credential = BasicCredential::new(credential_identity(user, device));
    let identity = SigningIdentity::new(credential.into_credential(), public);
    mls_rs::Client::builder()
        .identity_provider(BasicIdentityProvider)
        .crypto_provider(crypto)
        .signing_identity(identity, secret, MLS_RS_SUITE)
        .build()
}

#[tokio::test]
async fn an_mls_rs_client_joins_from_a_welcome_without_the_tree_and_talks_through_the_hub() {
    let server = TestServer::spawn().await;

    // The mls-rs device: its KeyPackage (bare, as every device uploads them) binds its key.
    let (rs_api, rs_session) = signed_in(&server, "rusty", true).await;
    let rs = mls_rs_client(&rs_session.user_id, &rs_session.device_id);
    let package = rs
        .generate_key_package_message(ExtensionList::default(), ExtensionList::default(), None)
        .expect("key package")
        .into_key_package()
        .expect("a key package")
        .mls_encode_to_vec()
        .expect("encode");
    rs_api
        .upload_key_packages(&UploadKeyPackagesRequest {
            key_packages: vec![package.into()],
        })
        .await
        .expect("the hub takes mls-rs KeyPackages");

    // An openmls device whose group puts no ratchet tree in its Welcomes adds it.
    let (ann_api, ann_session) = signed_in(&server, "ann", true).await;
    let ann = TestMlsDevice::new(&ann_session.user_id, &ann_session.device_id);
    let group_id = GroupId::parse(&format!("interop@{}", server.server_name())).unwrap();
    let mut group = MlsGroup::builder()
        .with_group_id(MlsGroupId::from_slice(group_id.as_str().as_bytes()))
        .ciphersuite(CIPHERSUITE)
        .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(false)
        .build(&ann.provider, &ann.signer, ann.credential.clone())
        .expect("group");
    let info = group
        .export_group_info(
            openmls::prelude::OpenMlsProvider::crypto(&ann.provider),
            &ann.signer,
            false,
        )
        .expect("info");
    let tree = openmls::prelude::tls_codec::Serialize::tls_serialize_detached(&group.export_ratchet_tree()).unwrap();
    ann_api
        .create_group(&parley_specs::groups_api::CreateGroupRequest {
            group_info: serialize(&info).into(),
            ratchet_tree: tree.into(),
        })
        .await
        .expect("create");
    // An SDK device is added with the same tree-less Welcome: it fetches the tree too.
    let dir = tempfile::tempdir().unwrap();
    let mut sam = device(&server, dir.path(), "sam", true).await;
    let mut packages = Vec::new();
    for user in [&rs_session.user_id, sam.user_id()] {
        let claimed = ann_api
            .claim_key_packages(&ClaimKeyPackagesRequest { user_id: user.clone() })
            .await
            .expect("claim");
        packages.extend(
            claimed
                .key_packages
                .iter()
                .map(|k| key_package_from(k.key_package.as_slice())),
        );
    }
    assert_eq!(packages.len(), 2);
    let (commit, welcome) = ann.add(&mut group, &packages);
    let add = SubmitCommitRequest {
        txn_id: "add-rusty".into(),
        commit: commit.into(),
        welcome: Some(welcome.into()),
        group_info: ann.pending_group_info(&group).into(),
    };
    ann_api.submit_commit(&group_id, &add).await.expect("added");
    group.merge_pending_commit(&ann.provider).expect("merge");

    // The Welcome reaches the mls-rs device; it has no tree, which the hub serves.
    let inbox = rs_api.read_inbox(&InboxQuery::default()).await.expect("inbox");
    let entry = inbox
        .entries
        .iter()
        .find(|e| e.kind == InboxEntryKind::Welcome)
        .expect("a Welcome");
    let welcome = MlsMessage::from_bytes(entry.payload.as_ref().unwrap().as_slice()).expect("welcome");
    assert!(rs.join_group(None, &welcome, None).is_err(), "no tree in the Welcome");
    let served = rs_api.group_info(&group_id).await.expect("group info for a member");
    let tree = mls_rs::group::ExportedTree::from_bytes(served.ratchet_tree.as_slice()).expect("tree");
    let (mut rs_group, _) = rs.join_group(Some(tree), &welcome, None).expect("mls-rs joins");
    rs_api.ack_inbox(entry.cursor).await.expect("ack");

    // ann -> mls-rs.
    // Parley's application messages are JSON envelopes (see protocol.md).
    let hello = ann.encrypt(&mut group, HELLO);
    ann_api
        .submit_message(
            &group_id,
            &SubmitMessageRequest {
                txn_id: "hello".into(),
                message: hello.into(),
                expires_at: None,
            },
        )
        .await
        .expect("send");
    let inbox = rs_api.read_inbox(&InboxQuery::default()).await.expect("inbox");
    let entry = inbox.entries.last().expect("ann's message");
    let received = rs_group
        .process_incoming_message(MlsMessage::from_bytes(entry.payload.as_ref().unwrap().as_slice()).unwrap())
        .expect("mls-rs decrypts");
    match received {
        mls_rs::group::ReceivedMessage::ApplicationMessage(m) => assert_eq!(m.data(), HELLO),
        other => panic!("expected an application message, got {other:?}"),
    }

    joined(&mut sam, &group_id).await;
    sync_until(&mut sam, &group_id, "ann's message", |h| {
        h.iter().any(|m| m.text == "hello from openmls")
    })
    .await;

    // mls-rs -> ann.
    let reply = rs_group
        .encrypt_application_message(REPLY, Vec::new())
        .expect("encrypt")
        .to_bytes()
        .expect("encode");
    rs_api
        .submit_message(
            &group_id,
            &SubmitMessageRequest {
                txn_id: "reply".into(),
                message: reply.into(),
                expires_at: None,
            },
        )
        .await
        .expect("the hub takes mls-rs messages");
    let inbox = ann_api.read_inbox(&InboxQuery::default()).await.expect("inbox");
    let entry = inbox.entries.last().expect("the reply");
    assert_eq!(entry.sender.device_id, rs_session.device_id);
    let got = ann.process(&mut group, entry.payload.as_ref().unwrap().as_slice());
    assert_eq!(got, Processed::Application(REPLY.to_vec()));
    // The SDK device reads mls-rs's message too, and its own text reaches mls-rs.
    sync_until(&mut sam, &group_id, "mls-rs's message", |h| {
        h.iter().any(|m| m.text == "hello from mls-rs")
    })
    .await;
    let sent = sam
        .send_text(&group_id, "hello from the sdk", None)
        .await
        .expect("send");
    let inbox = rs_api.read_inbox(&InboxQuery::default()).await.expect("inbox");
    let entry = inbox
        .entries
        .iter()
        .find(|e| e.seq == sent.seq)
        .expect("the SDK's message reached mls-rs");
    let received = rs_group
        .process_incoming_message(MlsMessage::from_bytes(entry.payload.as_ref().unwrap().as_slice()).unwrap())
        .expect("mls-rs decrypts the SDK's message");
    match received {
        mls_rs::group::ReceivedMessage::ApplicationMessage(m) => {
            assert!(String::from_utf8_lossy(m.data()).contains("hello from the sdk"));
        }
        other => panic!("expected an application message, got {other:?}"),
    }
}
