//! Real MLS material for tests, made with openmls the way a device makes it.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Capabilities, Ciphersuite, CredentialWithKey, Extension, ExtensionType, Extensions,
    GroupId as MlsGroupId, KeyPackage, KeyPackageIn, LeafNodeParameters, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY, MlsGroup,
    MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn, MlsMessageOut, NewSignerBundle, OpenMlsProvider,
    ProcessedMessageContent, ProtocolVersion, RatchetTreeIn, StagedWelcome, UnknownExtension,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_rust_crypto::RustCrypto;
use parley_specs::GroupId;
use parley_specs::groups_api::CreateGroupRequest;
use parley_specs::mls::credential_identity;
use parley_specs::{DeviceId, UserId};

pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// One device's MLS identity: its signature key and a BasicCredential naming it.
pub struct TestMlsDevice {
    pub provider: OpenMlsRustCrypto,
    pub signer: SignatureKeyPair,
    pub credential: CredentialWithKey,
    ciphersuite: Ciphersuite,
}

impl TestMlsDevice {
    pub fn new(user: &UserId, device: &DeviceId) -> Self {
        Self::with_identity(credential_identity(user, device), CIPHERSUITE)
    }

    /// A device whose credential says whatever `identity` is, in any ciphersuite.
    pub fn with_identity(identity: Vec<u8>, ciphersuite: Ciphersuite) -> Self {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(ciphersuite.signature_algorithm()).expect("signature key");
        signer
            .store(openmls::prelude::OpenMlsProvider::storage(&provider))
            .expect("store signer");
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity).into(),
            signature_key: signer.public().into(),
        };
        Self {
            provider,
            signer,
            credential,
            ciphersuite,
        }
    }

    /// A fresh TLS-serialized KeyPackage.
    pub fn key_package(&self, last_resort: bool) -> Vec<u8> {
        let mut builder = KeyPackage::builder();
        if last_resort {
            // A leaf must declare every extension its key package carries.
            let capabilities = Capabilities::new(None, None, Some(&[ExtensionType::LastResort]), None, None);
            builder = builder.mark_as_last_resort().leaf_node_capabilities(capabilities);
        }
        let bundle = builder
            .build(self.ciphersuite, &self.provider, &self.signer, self.credential.clone())
            .expect("key package");
        bundle.key_package().tls_serialize_detached().expect("serialize")
    }
}

impl TestMlsDevice {
    /// A KeyPackage with GREASE values (RFC 9420 §13.5) in its leaf's capability lists
    /// and, with `grease_extension`, a GREASE extension (0x8A8A) in `KeyPackage.extensions`
    /// listed in those capabilities, as clients built on mlspp send them.
    pub fn greased_key_package(&self, grease_extension: bool) -> Vec<u8> {
        const GREASE: u16 = 0x8A8A;
        let mut capabilities = Capabilities::builder().with_grease(self.provider.rand());
        let mut builder = KeyPackage::builder();
        if grease_extension {
            capabilities = capabilities.extensions(vec![ExtensionType::Unknown(GREASE)]);
            let extension = Extension::Unknown(GREASE, UnknownExtension(vec![]));
            builder = builder.key_package_extensions(Extensions::single(extension).expect("one extension"));
        }
        let bundle = builder
            .leaf_node_capabilities(capabilities.build())
            .build(self.ciphersuite, &self.provider, &self.signer, self.credential.clone())
            .expect("key package");
        bundle.key_package().tls_serialize_detached().expect("serialize")
    }
}

/// Wire format: handshakes in the clear for the hub, application messages encrypted.
pub fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

pub fn serialize(message: &MlsMessageOut) -> Vec<u8> {
    message.tls_serialize_detached().expect("serialize")
}

/// A KeyPackage naming `device` of `user`, made by someone holding a new key of its own:
/// what a group member would forge to slip a leaf in under another device's name.
pub fn forged_key_package(user: &UserId, device: &DeviceId) -> KeyPackage {
    key_package_from(&TestMlsDevice::new(user, device).key_package(false))
}

/// A claimed KeyPackage, checked as a client checks it before adding its device.
pub fn key_package_from(bytes: &[u8]) -> KeyPackage {
    KeyPackageIn::tls_deserialize_exact(bytes)
        .expect("key package parses")
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .expect("key package is valid")
}

/// An external commit and what comes with it.
pub struct ExternalJoin {
    /// The joiner's group, the commit merged.
    pub group: MlsGroup,
    /// The commit, as the hub takes it.
    pub commit: Vec<u8>,
    /// The GroupInfo of the epoch it creates, as the hub takes it.
    pub group_info: Vec<u8>,
}

/// An MLS external commit joining the group of `group_info` (an MLSMessage) with the
/// ratchet tree `tree`, as `credential` signed by `signer` (openmls adds a Remove of any
/// leaf with the same signature key).
pub fn external_join(
    provider: &OpenMlsRustCrypto,
    signer: &SignatureKeyPair,
    credential: CredentialWithKey,
    group_info: &[u8],
    tree: &[u8],
) -> ExternalJoin {
    let MlsMessageBodyIn::GroupInfo(info) = MlsMessageIn::tls_deserialize_exact(group_info)
        .expect("group info parses")
        .extract()
    else {
        panic!("not a group info");
    };
    let tree = RatchetTreeIn::tls_deserialize_exact(tree).expect("tree parses");
    let (group, bundle) = MlsGroup::external_commit_builder()
        .with_ratchet_tree(tree)
        .with_config(join_config())
        .build_group(provider, info, credential)
        .expect("external commit builder")
        .load_psks(provider.storage())
        .expect("psks")
        .build(provider.rand(), provider.crypto(), signer, |_| true)
        .expect("external commit")
        .finalize(provider)
        .expect("finalize");
    let new_info = group
        .export_group_info(provider.crypto(), signer, false)
        .expect("group info");
    ExternalJoin {
        commit: serialize(bundle.commit()),
        group_info: serialize(&new_info),
        group,
    }
}

/// What processing one message did to a group.
#[derive(Debug, PartialEq, Eq)]
pub enum Processed {
    Application(Vec<u8>),
    Commit,
}

impl TestMlsDevice {
    /// A new group with this device as its only member, and the request that registers it.
    pub fn create_group(&self, id: &GroupId) -> (MlsGroup, CreateGroupRequest) {
        let group = MlsGroup::builder()
            .with_group_id(MlsGroupId::from_slice(id.as_str().as_bytes()))
            .ciphersuite(self.ciphersuite)
            .with_wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .use_ratchet_tree_extension(true)
            .build(&self.provider, &self.signer, self.credential.clone())
            .expect("create group");
        let info = group
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .expect("group info");
        let tree = group.export_ratchet_tree().tls_serialize_detached().expect("tree");
        let request = CreateGroupRequest {
            group_info: serialize(&info).into(),
            ratchet_tree: tree.into(),
        };
        (group, request)
    }

    pub fn join(&self, welcome: &[u8]) -> MlsGroup {
        let MlsMessageBodyIn::Welcome(welcome) =
            MlsMessageIn::tls_deserialize_exact(welcome).expect("parses").extract()
        else {
            panic!("not a welcome");
        };
        StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
            .expect("welcome")
            .into_group(&self.provider)
            .expect("join")
    }

    /// Decrypts an application message or applies a commit from the hub.
    pub fn process(&self, group: &mut MlsGroup, bytes: &[u8]) -> Processed {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .expect("parses")
            .try_into_protocol_message()
            .expect("protocol message");
        let processed = group.process_message(&self.provider, message).expect("process");
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Processed::Application(app.into_bytes()),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                group.merge_staged_commit(&self.provider, *staged).expect("merge");
                Processed::Commit
            }
            other => panic!("unexpected message content {other:?}"),
        }
    }

    /// A commit adding `key_packages` and its Welcome, left pending in `group` (see
    /// `discard_pending` when the hub is expected to refuse it).
    pub fn add(&self, group: &mut MlsGroup, key_packages: &[KeyPackage]) -> (Vec<u8>, Vec<u8>) {
        let (commit, welcome, _) = group
            .add_members(&self.provider, &self.signer, key_packages)
            .expect("add members");
        (serialize(&commit), serialize(&welcome))
    }

    /// A commit whose update path replaces this device's leaf with `other`'s credential
    /// and signature key (what a member trying to pass as another device would send).
    pub fn rename_commit(&self, group: &mut MlsGroup, other: &TestMlsDevice) -> Vec<u8> {
        let bundle = group
            .self_update_with_new_signer(
                &self.provider,
                &self.signer,
                NewSignerBundle {
                    signer: &other.signer,
                    credential_with_key: other.credential.clone(),
                },
                LeafNodeParameters::default(),
            )
            .expect("self update with another credential");
        serialize(bundle.commit())
    }

    /// The GroupInfo (without the ratchet tree) of the epoch `group`'s pending commit
    /// creates, signed by this device: what the hub takes with the commit. Made by
    /// merging the commit on a copy of the stored state, which is then put back.
    pub fn pending_group_info(&self, group: &MlsGroup) -> Vec<u8> {
        let storage = self.provider.storage();
        let snapshot = storage.values.read().expect("storage").clone();
        let mut merged = MlsGroup::load(storage, group.group_id())
            .expect("load")
            .expect("the group is stored");
        merged.merge_pending_commit(&self.provider).expect("merge a copy");
        let info = merged
            .export_group_info(self.provider.crypto(), &self.signer, false)
            .expect("group info");
        *storage.values.write().expect("storage") = snapshot;
        serialize(&info)
    }

    /// Joins by external commit from the hub's GroupInfo and tree (see `external_join`).
    pub fn external_join(&self, group_info: &[u8], tree: &[u8]) -> ExternalJoin {
        external_join(&self.provider, &self.signer, self.credential.clone(), group_info, tree)
    }

    /// Forgets a commit the hub refused, so the group can commit again.
    pub fn discard_pending(&self, group: &mut MlsGroup) {
        group
            .clear_pending_commit(self.provider.storage())
            .expect("clear the pending commit");
    }

    pub fn encrypt(&self, group: &mut MlsGroup, plaintext: &[u8]) -> Vec<u8> {
        serialize(
            &group
                .create_message(&self.provider, &self.signer, plaintext)
                .expect("encrypt"),
        )
    }
}
