//! A homeserver's signature on the root of its key directory at one epoch (see
//! `parley_specs::transparency_api`). The signature covers the canonical JSON of
//! `{"directory_root": <DirectoryRoot>, "signed_at_ms": <published_at_ms>}`, so a signed
//! root can be passed on and checked anywhere, and two signed roots of one server for
//! one epoch that differ are proof that the server showed two different logs.

use parley_specs::keys_api::ServerSignature;
use parley_specs::transparency_api::{DirectoryRoot, SignedRoot};

use crate::key_document::VerifiedKeys;
use crate::server_key::ServerKeyring;
use crate::signed_object::{self, Fault, Signed};

const NAME: &str = "directory_root";
/// Length of a root hash and of a VRF public key.
pub const HASH_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootError {
    #[error("the directory root of {server} is signed by {signer}")]
    NotTheServer { server: String, signer: String },
    #[error("the directory root of {server} for epoch {epoch} is malformed: {reason}")]
    Malformed { server: String, epoch: u64, reason: String },
    #[error("{server} has no key {key_id} valid when it signed its directory root for epoch {epoch}")]
    UnknownKey { server: String, epoch: u64, key_id: String },
    #[error("the signature on the directory root of {server} for epoch {epoch} does not verify")]
    BadSignature { server: String, epoch: u64 },
}

/// A root whose signature was checked against its server's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRoot(SignedRoot);

impl VerifiedRoot {
    pub fn root(&self) -> &DirectoryRoot {
        &self.0.root
    }

    pub fn epoch(&self) -> u64 {
        self.0.root.epoch
    }

    /// The root hash, 32 bytes (checked).
    pub fn root_hash(&self) -> [u8; HASH_LEN] {
        self.0.root.root_hash.as_slice().try_into().unwrap_or([0; HASH_LEN])
    }

    pub fn vrf_public_key(&self) -> &[u8] {
        self.0.root.vrf_public_key.as_slice()
    }

    pub fn signed(&self) -> &SignedRoot {
        &self.0
    }

    pub fn into_signed(self) -> SignedRoot {
        self.0
    }
}

/// Signs this server's root of one epoch.
pub fn sign(keyring: &ServerKeyring, root: DirectoryRoot) -> SignedRoot {
    let signed = signed_object::sign(keyring, NAME, &root, root.published_at_ms);
    SignedRoot {
        root,
        server_signature: ServerSignature {
            key_id: signed.key_id,
            signed_at_ms: signed.signed_at_ms,
            signature: signed.signature,
        },
    }
}

/// Checks that `signed` is well formed and signed by the server it names, whose verified
/// keys are `server_keys`.
pub fn verify(signed: SignedRoot, server_keys: &VerifiedKeys) -> Result<VerifiedRoot, RootError> {
    let server = signed.root.server.to_string();
    let epoch = signed.root.epoch;
    if server_keys.server_name != signed.root.server {
        return Err(RootError::NotTheServer {
            server,
            signer: server_keys.server_name.to_string(),
        });
    }
    let malformed = |reason: String| RootError::Malformed {
        server: server.clone(),
        epoch,
        reason,
    };
    if signed.root.root_hash.as_slice().len() != HASH_LEN {
        return Err(malformed(format!("the root hash is not {HASH_LEN} bytes")));
    }
    if signed.root.vrf_public_key.as_slice().len() != HASH_LEN {
        return Err(malformed(format!("the VRF key is not {HASH_LEN} bytes")));
    }
    if signed.server_signature.signed_at_ms != signed.root.published_at_ms {
        return Err(malformed("it is signed at another time than published".to_owned()));
    }
    let signature = Signed {
        key_id: signed.server_signature.key_id.clone(),
        signed_at_ms: signed.server_signature.signed_at_ms,
        signature: signed.server_signature.signature.clone(),
    };
    signed_object::verify(server_keys, NAME, &signed.root, &signature).map_err(|fault| match fault {
        Fault::Malformed(reason) => malformed(reason),
        Fault::UnknownKey(key_id) => RootError::UnknownKey {
            server: server.clone(),
            epoch,
            key_id,
        },
        Fault::BadSignature => RootError::BadSignature {
            server: server.clone(),
            epoch,
        },
    })?;
    Ok(VerifiedRoot(signed))
}

#[cfg(test)]
mod tests {
    use parley_specs::ServerName;

    use super::*;
    use crate::key_document::KeyDocument;

    const NOW: i64 = 1_764_460_800_000;

    fn root(server: &str, epoch: u64) -> DirectoryRoot {
        DirectoryRoot {
            server: ServerName::parse(server).unwrap(),
            epoch,
            root_hash: vec![7; 32].into(),
            vrf_public_key: vec![9; 32].into(),
            published_at_ms: NOW,
        }
    }

    #[test]
    fn a_signed_root_verifies_and_an_altered_one_does_not() {
        let keyring = ServerKeyring::generate();
        let name = ServerName::parse("a.test").unwrap();
        let keys = KeyDocument::signed(&name, &keyring, NOW, 86_400_000)
            .verify(&name, NOW)
            .unwrap();
        let signed = sign(&keyring, root("a.test", 3));
        assert_eq!(verify(signed.clone(), &keys).unwrap().epoch(), 3);

        let mut altered = signed.clone();
        altered.root.root_hash = vec![8; 32].into();
        assert!(matches!(verify(altered, &keys), Err(RootError::BadSignature { .. })));

        let mut other_server = sign(&keyring, root("b.test", 3));
        assert!(matches!(
            verify(other_server.clone(), &keys),
            Err(RootError::NotTheServer { .. })
        ));
        other_server.root.server = name;
        assert!(verify(other_server, &keys).is_err());

        let mut short = signed;
        short.root.root_hash = vec![1; 5].into();
        assert!(matches!(verify(short, &keys), Err(RootError::Malformed { .. })));
    }
}
