//! A homeserver's signature on its users' entries in the device key directory.
//!
//! Each device's MLS signature key is bound to it by its own homeserver, which is the one
//! party that can say which devices a user has. A server answers other servers' questions
//! about its users with the entry signed by its federation key, so the answer stays
//! checkable wherever it is cached or relayed (a hub checking a commit, a homeserver
//! passing it on to a client), exactly like the hub signature on an ordered message. The
//! signature covers the canonical JSON of
//! `{"device_keys": <UserDeviceKeys>, "signed_at_ms": <ms>}`; the top-level key names set
//! it apart from the other objects a server signs.

use std::collections::BTreeSet;

use parley_specs::keys_api::{SIGNATURE_KEY_LEN, ServerSignature, SignedDeviceKeys, UserDeviceKeys};

use crate::key_document::VerifiedKeys;
use crate::server_key::ServerKeyring;
use crate::signed_object::{self, Fault, Signed};

/// The name the signed list stands under (see `signed_object`).
const NAME: &str = "device_keys";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceKeysError {
    #[error("the devices of {user} are signed by {signer}, not by the user's server")]
    NotTheUsersServer { user: String, signer: String },
    #[error("the device list of {user} is malformed: {reason}")]
    Malformed { user: String, reason: String },
    #[error("{server} has no key {key_id} valid when the device list of {user} was signed")]
    UnknownKey {
        user: String,
        server: String,
        key_id: String,
    },
    #[error("the signature on the device list of {user} does not verify")]
    BadSignature { user: String },
}

/// A device list whose signature was checked against the keys of the user's own server.
/// It keeps the signed form, so it can be handed on as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDeviceKeys(SignedDeviceKeys);

impl VerifiedDeviceKeys {
    pub fn device_keys(&self) -> &UserDeviceKeys {
        &self.0.device_keys
    }

    pub fn signed_at_ms(&self) -> i64 {
        self.0.server_signature.signed_at_ms
    }

    /// The signed list, as its server signed it.
    pub fn signed(&self) -> &SignedDeviceKeys {
        &self.0
    }

    pub fn into_signed(self) -> SignedDeviceKeys {
        self.0
    }
}

/// Signs the directory entry of one of this server's users.
pub fn sign(keyring: &ServerKeyring, device_keys: UserDeviceKeys, now_ms: i64) -> SignedDeviceKeys {
    let signed = signed_object::sign(keyring, NAME, &device_keys, now_ms);
    SignedDeviceKeys {
        server_signature: ServerSignature {
            key_id: signed.key_id,
            signed_at_ms: signed.signed_at_ms,
            signature: signed.signature,
        },
        device_keys,
        transparency: None,
    }
}

/// Checks that `signed` was signed by the server of the user it lists, whose verified
/// keys are `server_keys`, and that it is well formed (one entry per device, 32-byte keys).
pub fn verify(signed: SignedDeviceKeys, server_keys: &VerifiedKeys) -> Result<VerifiedDeviceKeys, DeviceKeysError> {
    let user = signed.device_keys.user_id.to_string();
    let server = signed.device_keys.user_id.server_name();
    if server_keys.server_name != server {
        return Err(DeviceKeysError::NotTheUsersServer {
            user,
            signer: server_keys.server_name.to_string(),
        });
    }
    let malformed = |reason: String| DeviceKeysError::Malformed {
        user: user.clone(),
        reason,
    };
    let mut seen = BTreeSet::new();
    for device in &signed.device_keys.devices {
        if !seen.insert(&device.device_id) {
            return Err(malformed(format!("device {} is listed twice", device.device_id)));
        }
        if device.signature_key.as_slice().len() != SIGNATURE_KEY_LEN {
            return Err(malformed(format!(
                "the key of device {} is {} bytes, not {SIGNATURE_KEY_LEN}",
                device.device_id,
                device.signature_key.as_slice().len()
            )));
        }
    }
    let server_signature = &signed.server_signature;
    let signature = Signed {
        key_id: server_signature.key_id.clone(),
        signed_at_ms: server_signature.signed_at_ms,
        signature: server_signature.signature.clone(),
    };
    signed_object::verify(server_keys, NAME, &signed.device_keys, &signature).map_err(|fault| match fault {
        Fault::Malformed(reason) => malformed(reason),
        Fault::UnknownKey(key_id) => DeviceKeysError::UnknownKey {
            user: user.clone(),
            server: server.to_string(),
            key_id,
        },
        Fault::BadSignature => DeviceKeysError::BadSignature { user: user.clone() },
    })?;
    Ok(VerifiedDeviceKeys(signed))
}

#[cfg(test)]
mod tests {
    use parley_specs::keys_api::DeviceKey;
    use parley_specs::{DeviceId, ServerName, UserId};

    use super::*;
    use crate::key_document::KeyDocument;

    const NOW: i64 = 1_764_460_800_000;
    const DAY_MS: i64 = 86_400_000;

    fn keys_of(keyring: &ServerKeyring, server: &str) -> VerifiedKeys {
        let name = ServerName::parse(server).unwrap();
        KeyDocument::signed(&name, keyring, NOW, DAY_MS)
            .verify(&name, NOW)
            .unwrap()
    }

    fn bobs_devices() -> UserDeviceKeys {
        UserDeviceKeys {
            user_id: UserId::parse("bob@b.test").unwrap(),
            devices: vec![
                DeviceKey {
                    device_id: DeviceId::parse("LAPTOP").unwrap(),
                    signature_key: vec![1; 32].into(),
                },
                DeviceKey {
                    device_id: DeviceId::parse("PHONE").unwrap(),
                    signature_key: vec![2; 32].into(),
                },
            ],
        }
    }

    #[test]
    fn a_signed_list_verifies_after_a_json_round_trip() {
        let server = ServerKeyring::generate();
        let signed = sign(&server, bobs_devices(), NOW);
        let wire = serde_json::to_string(&signed).unwrap();
        let received: SignedDeviceKeys = serde_json::from_str(&wire).unwrap();
        let verified = verify(received, &keys_of(&server, "b.test")).unwrap();
        assert_eq!(verified.device_keys(), &bobs_devices());
        assert_eq!(verified.signed_at_ms(), NOW);
        assert_eq!(
            verified.device_keys().key_of(&DeviceId::parse("PHONE").unwrap()),
            Some(&[2; 32][..])
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let server = ServerKeyring::generate();
        let keys = keys_of(&server, "b.test");
        let mut swapped = sign(&server, bobs_devices(), NOW);
        swapped.device_keys.devices[0].signature_key = vec![9; 32].into();
        assert!(matches!(
            verify(swapped, &keys),
            Err(DeviceKeysError::BadSignature { .. })
        ));
        let mut added = sign(&server, bobs_devices(), NOW);
        added.device_keys.devices.push(DeviceKey {
            device_id: DeviceId::parse("EVIL").unwrap(),
            signature_key: vec![3; 32].into(),
        });
        assert!(matches!(
            verify(added, &keys),
            Err(DeviceKeysError::BadSignature { .. })
        ));
        let mut redated = sign(&server, bobs_devices(), NOW);
        redated.server_signature.signed_at_ms += 1;
        assert!(matches!(
            verify(redated, &keys),
            Err(DeviceKeysError::BadSignature { .. })
        ));
    }

    #[test]
    fn only_the_users_own_server_vouches_for_its_devices() {
        let other = ServerKeyring::generate();
        let signed = sign(&other, bobs_devices(), NOW);
        let err = verify(signed, &keys_of(&other, "c.test")).unwrap_err();
        assert!(matches!(err, DeviceKeysError::NotTheUsersServer { .. }), "{err}");
        let imposter = sign(&ServerKeyring::generate(), bobs_devices(), NOW);
        let err = verify(imposter, &keys_of(&ServerKeyring::generate(), "b.test")).unwrap_err();
        assert!(matches!(err, DeviceKeysError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn malformed_lists_are_refused_even_when_signed() {
        let server = ServerKeyring::generate();
        let keys = keys_of(&server, "b.test");
        let mut short = bobs_devices();
        short.devices[1].signature_key = vec![2; 31].into();
        let mut twice = bobs_devices();
        twice.devices[1].device_id = twice.devices[0].device_id.clone();
        for list in [short, twice] {
            let err = verify(sign(&server, list, NOW), &keys).unwrap_err();
            assert!(matches!(err, DeviceKeysError::Malformed { .. }), "{err}");
        }
    }

    #[test]
    fn signed_bytes_differ_from_a_hub_signatures() {
        // A device list and an ordered message can never be confused: their signed
        // objects have different top-level keys.
        let bytes = String::from_utf8(signed_object::signed_bytes(NAME, &bobs_devices(), NOW)).unwrap();
        assert!(bytes.starts_with(r#"{"device_keys":"#), "{bytes}");
    }
}
