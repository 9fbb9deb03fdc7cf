//! Real MLS material for tests, made with openmls the way a device makes it.

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{BasicCredential, Capabilities, Ciphersuite, CredentialWithKey, ExtensionType, KeyPackage};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
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
