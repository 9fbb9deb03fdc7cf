//! What the server and the client of Parley's key transparency share: the directory's
//! configuration (hash and VRF of `akd`, with Parley's own domain label), the value a
//! user's devices are published as, the wire encoding of proofs (akd's protobuf) and the
//! checks of lookup and key-history proofs a client runs against a signed root.
//!
//! The directory itself (publishing epochs, making proofs, checking append-only proofs)
//! runs on the homeserver with the `akd` crate; this crate needs `akd_core` only, so a
//! client does not carry the directory.

use akd_core::configuration::ExperimentalConfiguration;
use akd_core::verify::history::{HistoryParams, HistoryVerificationParams};
use akd_core::{AkdLabel, AkdValue, DomainLabel};
use parley_specs::keys_api::{DeviceKey, SIGNATURE_KEY_LEN};
use parley_specs::transparency_api::DirectoryRoot;
use parley_specs::{DeviceId, UserId};
use protobuf::Message as _;
use serde::{Deserialize, Serialize};

pub use akd_core::{AppendOnlyProof, HistoryProof, LookupProof};

/// Parley's domain separation label for every hash of the directory.
#[derive(Debug, Clone, Copy)]
pub struct ParleyDomain;

impl DomainLabel for ParleyDomain {
    fn domain_label() -> &'static [u8] {
        b"parley key directory v1"
    }
}

/// The directory configuration every Parley server and client uses.
pub type DirectoryConfig = ExperimentalConfiguration<ParleyDomain>;

/// A proof larger than this is refused before it is decoded (a lookup proof of a
/// directory of a billion users is a few KiB; a history or audit proof is bounded by the
/// versions and epochs asked for).
pub const MAX_PROOF_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof is malformed: {0}")]
    Malformed(String),
    #[error("the proof does not verify against the signed root of epoch {epoch}: {reason}")]
    DoesNotVerify { epoch: u64, reason: String },
    #[error("the published value is malformed: {0}")]
    BadValue(String),
}

/// The label a user is published under: the user id's bytes.
pub fn label(user: &UserId) -> AkdLabel {
    AkdLabel(user.as_str().as_bytes().to_vec())
}

/// The published form of a user's devices: JSON `{"devices": [...]}`, sorted by device id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishedDevices {
    devices: Vec<DeviceKey>,
}

/// The value `devices` are published as (sorted by device id first).
pub fn encode_value(devices: &[DeviceKey]) -> AkdValue {
    let mut devices = devices.to_vec();
    devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    AkdValue(serde_json::to_vec(&PublishedDevices { devices }).unwrap_or_default())
}

/// The devices a published value names; refuses anything but the form `encode_value` makes.
pub fn decode_value(value: &[u8]) -> Result<Vec<DeviceKey>, ProofError> {
    let published: PublishedDevices = serde_json::from_slice(value).map_err(|e| ProofError::BadValue(e.to_string()))?;
    let mut previous: Option<&DeviceId> = None;
    for device in &published.devices {
        if previous.is_some_and(|p| p >= &device.device_id) {
            return Err(ProofError::BadValue("devices are not sorted and distinct".to_owned()));
        }
        if device.signature_key.as_slice().len() != SIGNATURE_KEY_LEN {
            return Err(ProofError::BadValue(format!(
                "the key of device {} is not {SIGNATURE_KEY_LEN} bytes",
                device.device_id
            )));
        }
        previous = Some(&device.device_id);
    }
    Ok(published.devices)
}

macro_rules! proof_codec {
    ($encode:ident, $decode:ident, $ty:ty, $proto:ty) => {
        /// The protobuf encoding of the proof.
        pub fn $encode(proof: &$ty) -> Vec<u8> {
            <$proto>::from(proof).write_to_bytes().unwrap_or_default()
        }

        /// The proof from its protobuf encoding; bounded in size, never panics.
        pub fn $decode(bytes: &[u8]) -> Result<$ty, ProofError> {
            if bytes.len() > MAX_PROOF_BYTES {
                return Err(ProofError::Malformed(format!(
                    "{} bytes, more than {MAX_PROOF_BYTES}",
                    bytes.len()
                )));
            }
            let proto = <$proto>::parse_from_bytes(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?;
            <$ty>::try_from(&proto).map_err(|e| ProofError::Malformed(e.to_string()))
        }
    };
}

proof_codec!(
    encode_lookup_proof,
    decode_lookup_proof,
    LookupProof,
    akd_core::proto::specs::types::LookupProof
);
proof_codec!(
    encode_history_proof,
    decode_history_proof,
    HistoryProof,
    akd_core::proto::specs::types::HistoryProof
);
proof_codec!(
    encode_audit_proof,
    decode_audit_proof,
    AppendOnlyProof,
    akd_core::proto::specs::types::AppendOnlyProof
);

/// One published version of a user's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The epoch it was published in.
    pub epoch: u64,
    /// Its version (1 for the user's first publication).
    pub version: u64,
    pub devices: Vec<DeviceKey>,
}

fn root_parts(root: &DirectoryRoot) -> Result<[u8; 32], ProofError> {
    root.root_hash
        .as_slice()
        .try_into()
        .map_err(|_| ProofError::Malformed("the root hash is not 32 bytes".to_owned()))
}

/// Checks a lookup proof of `user` against `root` (whose signature the caller checked)
/// and returns the devices it proves are published for `user` at that epoch.
pub fn verify_lookup(root: &DirectoryRoot, user: &UserId, proof: &[u8]) -> Result<Published, ProofError> {
    let proof = decode_lookup_proof(proof)?;
    let result = akd_core::verify::lookup::lookup_verify::<DirectoryConfig>(
        root.vrf_public_key.as_slice(),
        root_parts(root)?,
        root.epoch,
        label(user),
        proof,
    )
    .map_err(|e| ProofError::DoesNotVerify {
        epoch: root.epoch,
        reason: format!("{e:?}"),
    })?;
    Ok(Published {
        epoch: result.epoch,
        version: result.version,
        devices: decode_value(&result.value.0)?,
    })
}

/// Checks a key-history proof of `user`'s `versions` most recent versions against
/// `root` and returns them, oldest first.
pub fn verify_history(
    root: &DirectoryRoot,
    user: &UserId,
    proof: &[u8],
    versions: u64,
) -> Result<Vec<Published>, ProofError> {
    let proof = decode_history_proof(proof)?;
    let most_recent = usize::try_from(versions).map_err(|_| ProofError::Malformed("too many versions".to_owned()))?;
    let results = akd_core::verify::history::key_history_verify::<DirectoryConfig>(
        root.vrf_public_key.as_slice(),
        root_parts(root)?,
        root.epoch,
        label(user),
        proof,
        HistoryVerificationParams::Default {
            history_params: HistoryParams::MostRecent(most_recent),
        },
    )
    .map_err(|e| ProofError::DoesNotVerify {
        epoch: root.epoch,
        reason: format!("{e:?}"),
    })?;
    let mut published = results
        .into_iter()
        .map(|r| {
            Ok(Published {
                epoch: r.epoch,
                version: r.version,
                devices: decode_value(&r.value.0)?,
            })
        })
        .collect::<Result<Vec<_>, ProofError>>()?;
    published.sort_by_key(|p| p.version);
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, key: u8) -> DeviceKey {
        DeviceKey {
            device_id: DeviceId::parse(id).unwrap(),
            signature_key: vec![key; 32].into(),
        }
    }

    #[test]
    fn a_value_round_trips_sorted_and_malformed_values_are_refused() {
        let value = encode_value(&[device("BBBB", 2), device("AAAA", 1)]);
        let devices = decode_value(&value.0).unwrap();
        assert_eq!(devices, vec![device("AAAA", 1), device("BBBB", 2)]);
        assert!(decode_value(b"{\"devices\":[]}").unwrap().is_empty());
        assert!(decode_value(b"not json").is_err());
        let unsorted = serde_json::to_vec(&PublishedDevices {
            devices: vec![device("BBBB", 2), device("AAAA", 1)],
        })
        .unwrap();
        assert!(decode_value(&unsorted).is_err());
        let short = br#"{"devices":[{"device_id":"AAAA","signature_key":"AAAA"}]}"#;
        assert!(decode_value(short).is_err());
    }

    #[test]
    fn garbage_proofs_are_errors_not_panics() {
        for bytes in [&b""[..], b"\x0a\xff\xff\xff", &[0xffu8; 64]] {
            let _ = decode_lookup_proof(bytes);
            let _ = decode_history_proof(bytes);
            let _ = decode_audit_proof(bytes);
        }
        assert!(decode_lookup_proof(&vec![0u8; MAX_PROOF_BYTES + 1]).is_err());
    }
}
