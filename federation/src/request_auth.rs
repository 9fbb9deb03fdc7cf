//! The signature on every federation request.
//!
//! The origin signs, with its current server key, one line each of: a version tag, the
//! method, the path with query, the origin, the destination, the timestamp (Unix
//! milliseconds) and the hex SHA-256 of the body. It sends
//!
//! ```text
//! Authorization: Parley-Federation origin="a.example",destination="b.example",key="ed25519:AbC123",ts="1764460800000",sig="<base64>"
//! ```
//!
//! The receiver parses that into a [`SignedRequest`] and, with the origin's verified keys,
//! turns it into a [`VerifiedRequest`] only if the destination is itself, the timestamp
//! is within [`MAX_CLOCK_SKEW_MS`] of its clock, the key was valid when the request was
//! signed and the signature holds. Replays inside that window are the receiver's to
//! refuse, keyed by [`VerifiedRequest::replay_key`].

use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier as _};
use parley_specs::ServerName;
use sha2::{Digest as _, Sha256};

use crate::B64;
use crate::key_document::VerifiedKeys;
use crate::server_key::{KeyId, ServerKeyring};

pub const SCHEME: &str = "Parley-Federation";
/// How far a request's timestamp may be from the receiver's clock, either way.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;
const SIGNING_TAG: &str = "parley-federation-v1";

/// What a request signature covers besides the names and the time.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path and query exactly as sent (`/federation/v1/...?a=b`).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request has no {SCHEME} authorization")]
    Missing,
    #[error("the {SCHEME} authorization is malformed: {0}")]
    Malformed(String),
    #[error("the request is addressed to {found}, not to this server ({expected})")]
    WrongDestination { expected: String, found: String },
    #[error("the request was signed at {timestamp_ms}, more than 5 minutes from this server's clock ({now_ms})")]
    Stale { timestamp_ms: i64, now_ms: i64 },
    #[error("{origin} has no key {key_id} valid when the request was signed")]
    UnknownKey { origin: String, key_id: KeyId },
    #[error("the keys given are {keys_of}'s, but the request claims to come from {origin}")]
    KeysOfAnotherServer { origin: String, keys_of: String },
    #[error("the request's signature does not verify")]
    BadSignature,
}

fn signing_input(
    parts: &RequestParts<'_>,
    origin: &ServerName,
    destination: &ServerName,
    timestamp_ms: i64,
) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(parts.body));
    format!(
        "{SIGNING_TAG}\n{}\n{}\n{origin}\n{destination}\n{timestamp_ms}\n{body_hash}",
        parts.method.to_ascii_uppercase(),
        parts.path_and_query
    )
    .into_bytes()
}

/// The `Authorization` header value for a request from `origin` to `destination`.
pub fn authorization(
    keyring: &ServerKeyring,
    origin: &ServerName,
    destination: &ServerName,
    parts: &RequestParts<'_>,
    now_ms: i64,
) -> String {
    let signature = keyring.sign(&signing_input(parts, origin, destination, now_ms));
    format!(
        "{SCHEME} origin=\"{origin}\",destination=\"{destination}\",key=\"{}\",ts=\"{now_ms}\",sig=\"{}\"",
        keyring.key_id(),
        B64.encode(signature.to_bytes())
    )
}

fn required<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, AuthError> {
    value.ok_or_else(|| AuthError::Malformed(format!("`{name}` is missing")))
}

/// A request's claimed origin and signature, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub origin: ServerName,
    pub destination: ServerName,
    pub key_id: KeyId,
    pub timestamp_ms: i64,
    signature: Signature,
}

/// A request whose origin signed it, for this server, recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub origin: ServerName,
    pub key_id: KeyId,
    pub timestamp_ms: i64,
    signature: Signature,
}

impl VerifiedRequest {
    /// Identifies this exact request: a second request with the same key within the clock
    /// skew window is a replay.
    pub fn replay_key(&self) -> String {
        format!(
            "{}/{}",
            self.origin,
            hex::encode(Sha256::digest(self.signature.to_bytes()))
        )
    }
}

impl SignedRequest {
    /// Parses an `Authorization` header value (`None` when the header is absent).
    pub fn parse(header: Option<&str>) -> Result<Self, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let params = header
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthError::Missing)?;
        let malformed = |why: &str| AuthError::Malformed(why.to_owned());
        let (mut origin, mut destination, mut key, mut ts, mut sig) = (None, None, None, None, None);
        for param in params.split(',') {
            let (name, value) = param
                .trim()
                .split_once('=')
                .ok_or_else(|| malformed("parameters are name=\"value\""))?;
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| malformed("parameter values are quoted"))?;
            let slot = match name {
                "origin" => &mut origin,
                "destination" => &mut destination,
                "key" => &mut key,
                "ts" => &mut ts,
                "sig" => &mut sig,
                other => return Err(AuthError::Malformed(format!("unknown parameter `{other}`"))),
            };
            if slot.replace(value).is_some() {
                return Err(AuthError::Malformed(format!("parameter `{name}` appears twice")));
            }
        }
        let server = |v: &str, name: &str| {
            ServerName::parse(v).map_err(|e| AuthError::Malformed(format!("`{name}` is not a server name: {e}")))
        };
        Ok(Self {
            origin: server(required(origin, "origin")?, "origin")?,
            destination: server(required(destination, "destination")?, "destination")?,
            key_id: KeyId::parse(required(key, "key")?).map_err(|e| AuthError::Malformed(e.to_string()))?,
            timestamp_ms: required(ts, "ts")?
                .parse()
                .map_err(|_| malformed("`ts` is not an integer"))?,
            signature: B64
                .decode(required(sig, "sig")?.trim_end_matches('='))
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .ok_or_else(|| malformed("`sig` is not a base64 ed25519 signature"))?,
        })
    }

    /// Checks what needs no key: the request is for `this_server`, and recent.
    pub fn check_addressing(&self, this_server: &ServerName, now_ms: i64) -> Result<(), AuthError> {
        if self.destination != *this_server {
            return Err(AuthError::WrongDestination {
                expected: this_server.to_string(),
                found: self.destination.to_string(),
            });
        }
        // abs_diff: any i64 a peer sends (i64::MIN overflowed `now - ts`, found by fuzzing).
        if now_ms.abs_diff(self.timestamp_ms) > MAX_CLOCK_SKEW_MS.unsigned_abs() {
            return Err(AuthError::Stale {
                timestamp_ms: self.timestamp_ms,
                now_ms,
            });
        }
        Ok(())
    }

    /// Checks everything: addressing, then the signature with the origin's keys.
    pub fn verify(
        self,
        parts: &RequestParts<'_>,
        this_server: &ServerName,
        now_ms: i64,
        origin_keys: &VerifiedKeys,
    ) -> Result<VerifiedRequest, AuthError> {
        self.check_addressing(this_server, now_ms)?;
        if origin_keys.server_name != self.origin {
            return Err(AuthError::KeysOfAnotherServer {
                origin: self.origin.to_string(),
                keys_of: origin_keys.server_name.to_string(),
            });
        }
        let key = origin_keys
            .key_for(&self.key_id, self.timestamp_ms)
            .ok_or_else(|| AuthError::UnknownKey {
                origin: self.origin.to_string(),
                key_id: self.key_id.clone(),
            })?;
        let input = signing_input(parts, &self.origin, &self.destination, self.timestamp_ms);
        key.verify(&input, &self.signature)
            .map_err(|_| AuthError::BadSignature)?;
        Ok(VerifiedRequest {
            origin: self.origin,
            key_id: self.key_id,
            timestamp_ms: self.timestamp_ms,
            signature: self.signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_document::KeyDocument;

    const NOW: i64 = 1_764_460_800_000;
    const DAY_MS: i64 = 86_400_000;

    fn name(s: &str) -> ServerName {
        ServerName::parse(s).unwrap()
    }

    fn keys_of(keyring: &ServerKeyring, server: &str) -> VerifiedKeys {
        KeyDocument::signed(&name(server), keyring, NOW, DAY_MS)
            .verify(&name(server), NOW)
            .unwrap()
    }

    const PARTS: RequestParts<'static> = RequestParts {
        method: "PUT",
        path_and_query: "/federation/v1/transactions/t1",
        body: br#"{"messages":[]}"#,
    };

    fn signed(keyring: &ServerKeyring, parts: &RequestParts<'_>, ts: i64) -> SignedRequest {
        let header = authorization(keyring, &name("a.example"), &name("b.example"), parts, ts);
        SignedRequest::parse(Some(&header)).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_and_names_its_origin() {
        let keyring = ServerKeyring::generate();
        let verified = signed(&keyring, &PARTS, NOW)
            .verify(&PARTS, &name("b.example"), NOW + 1_000, &keys_of(&keyring, "a.example"))
            .unwrap();
        assert_eq!(verified.origin, name("a.example"));
        assert_eq!(&verified.key_id, keyring.key_id());
        assert_ne!(
            verified.replay_key(),
            signed(&keyring, &PARTS, NOW + 1)
                .verify(&PARTS, &name("b.example"), NOW, &keys_of(&keyring, "a.example"))
                .unwrap()
                .replay_key()
        );
    }

    #[test]
    fn any_change_to_what_was_signed_breaks_the_signature() {
        let keyring = ServerKeyring::generate();
        let keys = keys_of(&keyring, "a.example");
        let changed = [
            RequestParts {
                method: "POST",
                ..PARTS
            },
            RequestParts {
                path_and_query: "/federation/v1/transactions/t2",
                ..PARTS
            },
            RequestParts { body: b"{}", ..PARTS },
        ];
        for parts in changed {
            let result = signed(&keyring, &PARTS, NOW).verify(&parts, &name("b.example"), NOW, &keys);
            assert_eq!(result, Err(AuthError::BadSignature), "{parts:?}");
        }
        let mut forged = signed(&keyring, &PARTS, NOW);
        forged.timestamp_ms += 1;
        assert_eq!(
            forged.verify(&PARTS, &name("b.example"), NOW, &keys),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn wrong_destination_stale_time_unknown_key_and_foreign_keys_are_refused() {
        let keyring = ServerKeyring::generate();
        let keys = keys_of(&keyring, "a.example");
        let request = signed(&keyring, &PARTS, NOW);
        assert!(matches!(
            request.clone().verify(&PARTS, &name("c.example"), NOW, &keys),
            Err(AuthError::WrongDestination { .. })
        ));
        assert!(matches!(
            request
                .clone()
                .verify(&PARTS, &name("b.example"), NOW + MAX_CLOCK_SKEW_MS + 1, &keys),
            Err(AuthError::Stale { .. })
        ));
        assert!(matches!(
            request
                .clone()
                .verify(&PARTS, &name("b.example"), NOW - MAX_CLOCK_SKEW_MS - 1, &keys),
            Err(AuthError::Stale { .. })
        ));
        let other = ServerKeyring::generate();
        assert!(matches!(
            request
                .clone()
                .verify(&PARTS, &name("b.example"), NOW, &keys_of(&other, "a.example")),
            Err(AuthError::UnknownKey { .. })
        ));
        assert!(matches!(
            request.verify(&PARTS, &name("b.example"), NOW, &keys_of(&keyring, "c.example")),
            Err(AuthError::KeysOfAnotherServer { .. })
        ));
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale_not_a_panic() {
        let keyring = ServerKeyring::generate();
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let header = authorization(&keyring, &name("a.example"), &name("b.example"), &PARTS, ts);
            let request = SignedRequest::parse(Some(&header)).unwrap();
            assert!(
                matches!(
                    request.check_addressing(&name("b.example"), NOW),
                    Err(AuthError::Stale { .. })
                ),
                "{ts}"
            );
        }
    }

    #[test]
    fn a_retired_key_still_verifies_what_it_signed_before_rotation() {
        let mut keyring = ServerKeyring::generate();
        let before = signed(&keyring, &PARTS, NOW);
        keyring.rotate(NOW + 10, false);
        let keys = keys_of(&keyring, "a.example");
        assert!(before.verify(&PARTS, &name("b.example"), NOW + 20, &keys).is_ok());
    }

    #[test]
    fn malformed_headers_get_a_precise_error() {
        let keyring = ServerKeyring::generate();
        let good = authorization(&keyring, &name("a.example"), &name("b.example"), &PARTS, NOW);
        assert_eq!(SignedRequest::parse(None), Err(AuthError::Missing));
        assert_eq!(SignedRequest::parse(Some("Bearer abc")), Err(AuthError::Missing));
        let cases = [
            good.replace("ts=\"", "ts=\"x"),
            good.replace("sig=\"", "sig=\"!!"),
            good.replace(",key=", ",key=\"ed25519:x\",key="),
            good.replace("origin=\"a.example\"", "origin=a.example"),
            good.replace("origin=\"a.example\",", ""),
            format!("{good},extra=\"1\""),
            good.replace("a.example", "not a name"),
        ];
        for header in cases {
            assert!(
                matches!(SignedRequest::parse(Some(&header)), Err(AuthError::Malformed(_))),
                "{header}"
            );
        }
    }
}
