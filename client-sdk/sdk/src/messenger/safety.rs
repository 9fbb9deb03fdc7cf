//! Safety numbers: a short fingerprint of two users' device signature keys, for the two
//! people to compare out of band (read aloud, or side by side), like Signal's.
//!
//! Each user's half is 30 digits computed from that user's devices as seen in the MLS
//! trees of the groups the two share, keeping exactly the keys the device key directory
//! vouches for (`contacts.rs`, `directory.rs`): `SHA-256` iterated [`ITERATIONS`] times over
//! `"parley-safety-number-v1" ‖ user id ‖ sorted (credential identity, signature key)
//! pairs` (every field length-prefixed), the first 30 bytes read as six 5-byte numbers
//! modulo 100000. The number is the two halves in ascending order: 60 digits shown as
//! 12 groups of 5, the same on both sides.

use std::collections::BTreeSet;
use std::fmt;

use parley_specs::{DeviceId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const DOMAIN: &[u8] = b"parley-safety-number-v1";
/// Iterations of SHA-256 per half (Signal uses 5200 of SHA-512), so that grinding keys
/// for a colliding number is expensive.
pub const ITERATIONS: usize = 5200;

/// One device's signature key, as seen in an MLS group tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceKey {
    /// The device.
    pub device_id: DeviceId,
    /// Its Ed25519 public signature key, hex.
    pub signature_key: String,
}

/// A contact whose safety number this user verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// The contact's device keys when verified.
    pub(crate) verified_keys: BTreeSet<DeviceKey>,
    #[serde(with = "time::serde::rfc3339")]
    pub(crate) verified_at: OffsetDateTime,
    /// Set when the contact's devices were seen to differ from the verified ones; cleared
    /// by verifying again.
    pub(crate) changed: bool,
}

/// Where a contact's verification stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Verification {
    /// Never verified.
    Unverified,
    /// Verified, and the contact's devices are the ones verified.
    Verified {
        /// When.
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
    },
    /// Verified once, but the contact's devices changed since: compare again.
    Changed {
        /// When it was verified.
        #[serde(with = "time::serde::rfc3339")]
        verified_at: OffsetDateTime,
        /// Devices seen now that were not verified.
        added: Vec<DeviceKey>,
        /// Verified devices no longer seen.
        removed: Vec<DeviceKey>,
    },
}

/// The safety number of this user and a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafetyNumber {
    /// This user.
    pub user: UserId,
    /// The contact.
    pub contact: UserId,
    /// 60 digits.
    pub digits: String,
    /// This user's devices the number covers.
    pub own_devices: Vec<DeviceKey>,
    /// The contact's devices the number covers.
    pub contact_devices: Vec<DeviceKey>,
    /// Whether the contact was verified, and whether their devices changed since.
    pub verification: Verification,
    /// The epoch of their server's key directory the contact's devices were published in
    /// ("transparent since epoch N"), when their list was checked against one.
    pub transparent_since_epoch: Option<u64>,
}

impl SafetyNumber {
    /// The digits as 12 groups of 5.
    pub fn groups(&self) -> Vec<&str> {
        (0..self.digits.len())
            .step_by(5)
            .filter_map(|at| self.digits.get(at..at + 5))
            .collect()
    }
}

impl fmt::Display for SafetyNumber {
    /// Three lines of four groups.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.groups().chunks(4).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&line.join(" "))?;
        }
        Ok(())
    }
}

/// The 60 digits for two users and their device keys; symmetric in the two.
pub(crate) fn safety_digits(a: (&UserId, &BTreeSet<DeviceKey>), b: (&UserId, &BTreeSet<DeviceKey>)) -> String {
    let mut halves = [half(a.0, a.1), half(b.0, b.1)];
    halves.sort();
    halves.concat()
}

/// 30 digits for one user's devices.
fn half(user: &UserId, keys: &BTreeSet<DeviceKey>) -> String {
    let mut data = Vec::new();
    let mut field = |bytes: &[u8]| {
        data.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        data.extend_from_slice(bytes);
    };
    field(DOMAIN);
    field(user.as_str().as_bytes());
    field(&(keys.len() as u32).to_be_bytes());
    for key in keys {
        field(key.device_id.as_str().as_bytes());
        field(key.signature_key.as_bytes());
    }
    let mut hash = Sha256::digest(&data);
    for _ in 1..ITERATIONS {
        let mut next = Sha256::new();
        next.update(hash);
        next.update(&data);
        hash = next.finalize();
    }
    hash[..30]
        .chunks(5)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

/// How `now` differs from `verified`: (added, removed).
pub(crate) fn difference(
    verified: &BTreeSet<DeviceKey>,
    now: &BTreeSet<DeviceKey>,
) -> (Vec<DeviceKey>, Vec<DeviceKey>) {
    (
        now.difference(verified).cloned().collect(),
        verified.difference(now).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str, hex: &str) -> DeviceKey {
        DeviceKey {
            device_id: DeviceId::parse(device).expect("device"),
            signature_key: hex.to_owned(),
        }
    }

    #[test]
    fn symmetric_sixty_digits_that_change_with_any_device() {
        let ann = UserId::parse("ann@a.example").expect("user");
        let ben = UserId::parse("ben@a.example").expect("user");
        let ann_keys = BTreeSet::from([key("A1", "aa11")]);
        let mut ben_keys = BTreeSet::from([key("B1", "bb11"), key("B2", "bb22")]);
        let one = safety_digits((&ann, &ann_keys), (&ben, &ben_keys));
        assert_eq!(one.len(), 60);
        assert!(one.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(one, safety_digits((&ben, &ben_keys), (&ann, &ann_keys)));
        ben_keys.insert(key("B3", "bb33"));
        let two = safety_digits((&ann, &ann_keys), (&ben, &ben_keys));
        assert_ne!(one, two);
        // The halves are per user: Ann's half is unchanged.
        let ann_half = half(&ann, &ann_keys);
        assert!(one.contains(&ann_half) && two.contains(&ann_half));
    }

    #[test]
    fn shown_as_twelve_groups_of_five() {
        let number = SafetyNumber {
            user: UserId::parse("ann@a.example").expect("user"),
            contact: UserId::parse("ben@a.example").expect("user"),
            digits: (0..60).map(|i| char::from(b'0' + (i % 10) as u8)).collect(),
            own_devices: vec![],
            contact_devices: vec![],
            verification: Verification::Unverified,
            transparent_since_epoch: None,
        };
        assert_eq!(number.groups().len(), 12);
        assert_eq!(
            number.to_string(),
            "01234 56789 01234 56789\n01234 56789 01234 56789\n01234 56789 01234 56789"
        );
    }
}
