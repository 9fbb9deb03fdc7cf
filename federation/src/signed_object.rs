//! A server's signature over one named JSON value and the time it signed it: the scheme
//! of the hub signature on ordered messages and of the signed device lists. The signature
//! covers the canonical JSON of `{"<name>": <value>, "signed_at_ms": <ms>}`; the name sets
//! each kind of signed object apart from the others.

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _};
use serde::Serialize;

use crate::B64;
use crate::canonical;
use crate::key_document::VerifiedKeys;
use crate::server_key::{KeyId, ServerKeyring};

/// The parts of a signature as the wire types carry them.
pub(crate) struct Signed {
    pub key_id: String,
    pub signed_at_ms: i64,
    /// Base64 (standard alphabet, unpadded) of the 64-byte signature.
    pub signature: String,
}

/// Why a signature was not accepted.
pub(crate) enum Fault {
    Malformed(String),
    /// The signer published no key of this id valid when it signed.
    UnknownKey(String),
    BadSignature,
}

pub(crate) fn signed_bytes(name: &str, value: &impl Serialize, signed_at_ms: i64) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    object.insert(name.to_owned(), serde_json::to_value(value).unwrap_or_default());
    object.insert("signed_at_ms".to_owned(), signed_at_ms.into());
    canonical::to_bytes(&serde_json::Value::Object(object))
}

pub(crate) fn sign(keyring: &ServerKeyring, name: &str, value: &impl Serialize, now_ms: i64) -> Signed {
    let signature = keyring.sign(&signed_bytes(name, value, now_ms));
    Signed {
        key_id: keyring.key_id().as_str().to_owned(),
        signed_at_ms: now_ms,
        signature: B64.encode(signature.to_bytes()),
    }
}

/// Checks `signed` over `value` under `name` with the signer's verified keys.
pub(crate) fn verify(keys: &VerifiedKeys, name: &str, value: &impl Serialize, signed: &Signed) -> Result<(), Fault> {
    let malformed = |e: &dyn std::fmt::Display| Fault::Malformed(e.to_string());
    let key_id = KeyId::parse(&signed.key_id).map_err(|e| malformed(&e))?;
    let bytes = B64.decode(&signed.signature).map_err(|e| malformed(&e))?;
    let signature = Signature::from_slice(&bytes).map_err(|e| malformed(&e))?;
    let key = keys
        .key_for(&key_id, signed.signed_at_ms)
        .ok_or_else(|| Fault::UnknownKey(key_id.as_str().to_owned()))?;
    key.verify(&signed_bytes(name, value, signed.signed_at_ms), &signature)
        .map_err(|_| Fault::BadSignature)
}
