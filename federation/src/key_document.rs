//! The key document a server publishes about itself: its current public keys, the keys it
//! retired with the time each stopped signing, and how long the document may be cached.
//! It is signed by every current key over its canonical JSON without `signatures`, so a
//! peer that fetched it over any path can check it came from the server.

use std::collections::BTreeMap;

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use parley_specs::ServerName;
use serde::{Deserialize, Serialize};

use crate::server_key::{KeyId, ServerKeyring, decode_public_key, encode_public_key};
use crate::{B64, canonical};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyKey {
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OldVerifyKey {
    pub key: String,
    pub expired_at_ms: i64,
    /// The key was compromised: nothing it signed verifies, whatever its claimed time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// The document as it travels; check it with [`KeyDocument::verify`] before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDocument {
    pub server_name: ServerName,
    /// Peers may use the document until then (Unix milliseconds) and refetch before.
    pub valid_until_ms: i64,
    pub verify_keys: BTreeMap<KeyId, VerifyKey>,
    #[serde(default)]
    pub old_verify_keys: BTreeMap<KeyId, OldVerifyKey>,
    /// Base64 ed25519 signatures by the current keys.
    pub signatures: BTreeMap<KeyId, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocumentError {
    #[error("the key document is for {found}, not {expected}")]
    WrongServer { expected: String, found: String },
    #[error("the key document expired at {valid_until_ms} (now {now_ms})")]
    Expired { valid_until_ms: i64, now_ms: i64 },
    #[error("the key document lists no current key")]
    NoKeys,
    #[error("the key document is not signed by its key {0}")]
    Unsigned(KeyId),
    #[error("the key document's signature by {0} is not valid")]
    BadSignature(KeyId),
    #[error("key {key_id} in the key document: {reason}")]
    BadKey { key_id: KeyId, reason: String },
}

/// A server's public key as a verified document states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub key: VerifyingKey,
    /// For a retired key: when it stopped signing.
    pub expired_at_ms: Option<i64>,
    /// A revoked key verifies nothing.
    pub revoked: bool,
}

/// The keys of a server, from a document whose signatures, server name and validity were
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKeys {
    pub server_name: ServerName,
    pub valid_until_ms: i64,
    pub keys: BTreeMap<KeyId, PublishedKey>,
}

impl VerifiedKeys {
    /// The key that checks a signature by `key_id` made at `signed_at_ms`: a current key
    /// while the document is valid, a retired key for what it signed before it expired,
    /// never a revoked key.
    pub fn key_for(&self, key_id: &KeyId, signed_at_ms: i64) -> Option<&VerifyingKey> {
        let published = self.keys.get(key_id)?;
        if published.revoked {
            return None;
        }
        let usable = match published.expired_at_ms {
            Some(expired_at) => signed_at_ms < expired_at,
            None => signed_at_ms <= self.valid_until_ms,
        };
        usable.then_some(&published.key)
    }
}

impl KeyDocument {
    /// The document for this server's keyring, valid for `validity_ms` from `now_ms`.
    pub fn signed(server_name: &ServerName, keyring: &ServerKeyring, now_ms: i64, validity_ms: i64) -> Self {
        let mut document = Self {
            server_name: server_name.clone(),
            valid_until_ms: now_ms.saturating_add(validity_ms),
            verify_keys: BTreeMap::from([(
                keyring.key_id().clone(),
                VerifyKey {
                    key: encode_public_key(&keyring.public_key()),
                },
            )]),
            old_verify_keys: keyring
                .retired()
                .iter()
                .map(|r| {
                    let old = OldVerifyKey {
                        key: encode_public_key(&r.public_key),
                        expired_at_ms: r.expired_at_ms,
                        revoked: r.revoked,
                    };
                    (r.key_id.clone(), old)
                })
                .collect(),
            signatures: BTreeMap::new(),
        };
        let signature = keyring.sign(&document.signed_bytes());
        document
            .signatures
            .insert(keyring.key_id().clone(), B64.encode(signature.to_bytes()));
        document
    }

    /// What the signatures cover: the canonical JSON of the document without them.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("signatures");
        }
        canonical::to_bytes(&value)
    }

    /// Checks that the document is `expected`'s, still valid at `now_ms`, and signed by
    /// each of its current keys.
    pub fn verify(self, expected: &ServerName, now_ms: i64) -> Result<VerifiedKeys, DocumentError> {
        if self.server_name != *expected {
            return Err(DocumentError::WrongServer {
                expected: expected.to_string(),
                found: self.server_name.to_string(),
            });
        }
        if self.valid_until_ms < now_ms {
            return Err(DocumentError::Expired {
                valid_until_ms: self.valid_until_ms,
                now_ms,
            });
        }
        if self.verify_keys.is_empty() {
            return Err(DocumentError::NoKeys);
        }
        let signed = self.signed_bytes();
        let mut keys = BTreeMap::new();
        for (key_id, published) in &self.verify_keys {
            let key = decode(key_id, &published.key)?;
            let signature = self
                .signatures
                .get(key_id)
                .ok_or_else(|| DocumentError::Unsigned(key_id.clone()))?;
            let signature = B64
                .decode(signature.trim_end_matches('='))
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .ok_or_else(|| DocumentError::BadSignature(key_id.clone()))?;
            key.verify(&signed, &signature)
                .map_err(|_| DocumentError::BadSignature(key_id.clone()))?;
            keys.insert(
                key_id.clone(),
                PublishedKey {
                    key,
                    expired_at_ms: None,
                    revoked: false,
                },
            );
        }
        for (key_id, old) in &self.old_verify_keys {
            let key = decode(key_id, &old.key)?;
            keys.entry(key_id.clone()).or_insert(PublishedKey {
                key,
                expired_at_ms: Some(old.expired_at_ms),
                revoked: old.revoked,
            });
        }
        Ok(VerifiedKeys {
            server_name: self.server_name,
            valid_until_ms: self.valid_until_ms,
            keys,
        })
    }
}

fn decode(key_id: &KeyId, b64: &str) -> Result<VerifyingKey, DocumentError> {
    let key = decode_public_key(b64).map_err(|e| DocumentError::BadKey {
        key_id: key_id.clone(),
        reason: e.to_string(),
    })?;
    if KeyId::of(&key) != *key_id {
        return Err(DocumentError::BadKey {
            key_id: key_id.clone(),
            reason: "the id does not belong to the key".into(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn server(name: &str) -> ServerName {
        ServerName::parse(name).unwrap()
    }

    #[test]
    fn a_signed_document_verifies_after_a_json_round_trip() {
        let keyring = ServerKeyring::generate();
        let document = KeyDocument::signed(&server("a.example"), &keyring, 0, DAY_MS);
        // A peer receives it as JSON laid out however the sender liked.
        let json = serde_json::to_string_pretty(&document).unwrap();
        let received: KeyDocument = serde_json::from_str(&json).unwrap();
        let keys = received.verify(&server("a.example"), 1_000).unwrap();
        assert_eq!(keys.key_for(keyring.key_id(), 1_000), Some(&keyring.public_key()));
        assert_eq!(
            keys.key_for(keyring.key_id(), DAY_MS + 1),
            None,
            "past the document's validity"
        );
    }

    #[test]
    fn retired_keys_verify_only_what_they_signed_before_they_expired() {
        let mut keyring = ServerKeyring::generate();
        let old_id = keyring.key_id().clone();
        let old_key = keyring.public_key();
        keyring.rotate(5_000, false);
        let keys = KeyDocument::signed(&server("b.example"), &keyring, 6_000, DAY_MS)
            .verify(&server("b.example"), 6_000)
            .unwrap();
        assert_eq!(keys.key_for(&old_id, 4_999), Some(&old_key));
        assert_eq!(keys.key_for(&old_id, 5_000), None);
        assert_eq!(keys.key_for(keyring.key_id(), 6_000), Some(&keyring.public_key()));
    }

    #[test]
    fn tampered_foreign_expired_or_unsigned_documents_are_refused() {
        let keyring = ServerKeyring::generate();
        let name = server("a.example");
        let good = KeyDocument::signed(&name, &keyring, 0, DAY_MS);

        let mut tampered = good.clone();
        tampered.valid_until_ms += 1;
        assert_eq!(
            tampered.verify(&name, 0),
            Err(DocumentError::BadSignature(keyring.key_id().clone()))
        );

        let mut swapped = good.clone();
        let intruder = ServerKeyring::generate();
        swapped.old_verify_keys.insert(
            intruder.key_id().clone(),
            OldVerifyKey {
                key: encode_public_key(&intruder.public_key()),
                expired_at_ms: DAY_MS,
                revoked: false,
            },
        );
        assert!(matches!(swapped.verify(&name, 0), Err(DocumentError::BadSignature(_))));

        assert!(matches!(
            good.clone().verify(&server("c.example"), 0),
            Err(DocumentError::WrongServer { .. })
        ));
        assert!(matches!(
            good.clone().verify(&name, DAY_MS + 1),
            Err(DocumentError::Expired { .. })
        ));

        let mut unsigned = good;
        unsigned.signatures.clear();
        assert_eq!(
            unsigned.verify(&name, 0),
            Err(DocumentError::Unsigned(keyring.key_id().clone()))
        );
    }
}
