//! A device's MLS identity (its signature key and a BasicCredential naming it
//! `user_id/device_id`) and its KeyPackages.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialWithKey, KeyPackage, KeyPackageIn, MIXED_PLAINTEXT_WIRE_FORMAT_POLICY,
    MlsGroupJoinConfig, OpenMlsProvider, ProtocolVersion,
};
use openmls_basic_credential::SignatureKeyPair;
use parley_specs::mls::{credential_identity, parse_credential_identity};
use parley_specs::{DeviceId, UserId};

use super::error::{MessengerError, mls};
use super::provider::DeviceProvider;

/// The profile's ciphersuite (`parley_specs::mls::CIPHERSUITE`).
pub(crate) const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Past epochs whose secrets are kept, so that application messages the hub accepted for
/// a recent epoch (its `past_epochs_accepted`, 3 by default) still decrypt after a commit.
pub(crate) const PAST_EPOCHS_KEPT: usize = 3;

/// How groups are joined (and created): handshakes in the clear for the hub, application
/// messages encrypted, the ratchet tree inside the Welcome.
pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .max_past_epochs(PAST_EPOCHS_KEPT)
        .build()
}

/// The signing key and credential of this device.
pub(crate) struct DeviceIdentity {
    pub(crate) signer: SignatureKeyPair,
    pub(crate) credential: CredentialWithKey,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity").finish_non_exhaustive()
    }
}

/// A new signature key pair for a device.
pub(crate) fn new_signer() -> Result<SignatureKeyPair, MessengerError> {
    SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(mls("generating a signature key"))
}

impl DeviceIdentity {
    /// The identity of `user`'s `device` with the key pair `signer` (see `new_signer`),
    /// which is kept in the provider's storage.
    pub(crate) fn with_stored_signer(
        provider: &DeviceProvider,
        signer: SignatureKeyPair,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Self, MessengerError> {
        signer
            .store(provider.storage())
            .map_err(mls("storing the signature key"))?;
        Ok(Self::with_signer(signer, user, device))
    }

    /// The identity whose public key is `public_key`, from the provider's storage.
    pub(crate) fn load(
        provider: &DeviceProvider,
        public_key: &[u8],
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Self, MessengerError> {
        let signer = SignatureKeyPair::read(provider.storage(), public_key, CIPHERSUITE.signature_algorithm())
            .ok_or_else(|| MessengerError::Mls("the store lacks this device's signature key".into()))?;
        Ok(Self::with_signer(signer, user, device))
    }

    fn with_signer(signer: SignatureKeyPair, user: &UserId, device: &DeviceId) -> Self {
        let credential = CredentialWithKey {
            credential: BasicCredential::new(credential_identity(user, device)).into(),
            signature_key: signer.public().into(),
        };
        Self { signer, credential }
    }

    /// A fresh TLS-serialized KeyPackage; its private keys stay in the provider's storage.
    /// A last-resort package is handed out when a device has no other left, and reused.
    pub(crate) fn key_package(&self, provider: &DeviceProvider, last_resort: bool) -> Result<Vec<u8>, MessengerError> {
        // A leaf must declare every extension its key package carries, and the group
        // policy extension every group requires (`roles.rs`).
        let mut builder = KeyPackage::builder().leaf_node_capabilities(super::roles::capabilities(last_resort));
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(CIPHERSUITE, provider, &self.signer, self.credential.clone())
            .map_err(mls("building a key package"))?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(mls("encoding a key package"))
    }
}

/// A KeyPackage claimed for `user`'s `device`, checked: it parses, its signatures verify,
/// its ciphersuite is the profile's and its credential names exactly that device.
pub(crate) fn checked_key_package(
    provider: &DeviceProvider,
    bytes: &[u8],
    user: &UserId,
    device: &DeviceId,
) -> Result<KeyPackage, String> {
    let package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|e| format!("does not parse: {e}"))?
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(|e| format!("is not valid: {e}"))?;
    if package.ciphersuite() != CIPHERSUITE {
        return Err(format!("uses ciphersuite {:?}", package.ciphersuite()));
    }
    let identity = package.leaf_node().credential().serialized_content();
    match parse_credential_identity(identity) {
        Some((u, d)) if &u == user && &d == device => Ok(package),
        _ => Err(format!(
            "names \"{}\" instead of {user}/{device}",
            String::from_utf8_lossy(identity)
        )),
    }
}
