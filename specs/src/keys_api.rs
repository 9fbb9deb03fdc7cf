//! Bodies of the MLS key package directory (`/client/v1/keys/...`).

use serde::{Deserialize, Serialize};

use crate::bytes::Base64Bytes;
use crate::ids::{DeviceId, UserId};
use crate::transparency_api::TransparencyLookup;

/// KeyPackages of the calling device, each TLS-serialized (RFC 9420 `KeyPackage`). One
/// may carry the `last_resort` extension; it replaces the device's previous last-resort one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackagesRequest {
    pub key_packages: Vec<Base64Bytes>,
}

/// How many key packages of the calling device wait to be claimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageCount {
    /// Unclaimed, unexpired, one-time key packages.
    pub available: i64,
    /// Whether a last-resort key package is stored (handed out when none is available).
    pub last_resort: bool,
    /// Claims of this device's packages in the last hour, one-time and last-resort.
    #[serde(default)]
    pub claimed_last_hour: i64,
    /// Of those, the claims answered with the last-resort package: none was left, or the
    /// claimer (or everyone) had used its hourly budget of one-time packages.
    #[serde(default)]
    pub last_resort_claimed_last_hour: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimKeyPackagesRequest {
    pub user_id: UserId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    pub device_id: DeviceId,
    pub key_package: Base64Bytes,
    /// The device's last-resort package, which others may also have received.
    pub last_resort: bool,
}

/// One key package for every device of the user that has one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimKeyPackagesResponse {
    pub user_id: UserId,
    pub key_packages: Vec<ClaimedKeyPackage>,
    /// Devices of the user that have no key package left; they cannot be added now.
    pub devices_without_key_packages: Vec<DeviceId>,
}

/// Length of a device's MLS signature public key (Ed25519, the profile's ciphersuite).
pub const SIGNATURE_KEY_LEN: usize = 32;

/// One entry of the device key directory: a device and its MLS signature public key,
/// bound by the device's homeserver at the device's first use of it and never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceKey {
    pub device_id: DeviceId,
    /// The Ed25519 public key (32 bytes) of the device's MLS leaves.
    pub signature_key: Base64Bytes,
}

/// A user's devices with their keys, as the user's homeserver vouches for them. Devices
/// that have not bound a key yet are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDeviceKeys {
    pub user_id: UserId,
    /// Sorted by device id.
    pub devices: Vec<DeviceKey>,
}

impl UserDeviceKeys {
    /// The key the directory holds for `device`, if it lists it.
    pub fn key_of(&self, device: &DeviceId) -> Option<&[u8]> {
        self.devices
            .iter()
            .find(|d| d.device_id == *device)
            .map(|d| d.signature_key.as_slice())
    }
}

/// A homeserver's ed25519 signature (with its federation key) over the canonical JSON of
/// `{"device_keys": <UserDeviceKeys>, "signed_at_ms": <ms>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSignature {
    pub key_id: String,
    pub signed_at_ms: i64,
    /// Base64 (standard alphabet, unpadded) of the 64-byte signature.
    pub signature: String,
}

/// Answer of `GET /federation/v1/users/{user_id}/devices`: the user's directory entry
/// signed by the user's own homeserver, so that whoever holds it can check it with that
/// server's published keys, however it reached them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedDeviceKeys {
    pub device_keys: UserDeviceKeys,
    pub server_signature: ServerSignature,
    /// The lookup proof of the user's entry in the server's key directory, when the
    /// server has published one (see `transparency_api`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<TransparencyLookup>,
}

/// Answer of `GET /client/v1/users/{user_id}/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDevices {
    pub device_keys: UserDeviceKeys,
    /// The signature of the user's homeserver over `device_keys` (as in the federation
    /// API): relayed as received for another server's user, made by this server for its
    /// own users. Absent only for a user of this server when it does not federate (it
    /// has no server key then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_signature: Option<ServerSignature>,
    /// The public key that made `server_signature`, as the user's homeserver publishes it
    /// in its key document: clients cannot reach the federation API, so this server relays
    /// it. A client pins it per server on first use and refuses a later different one (see
    /// `protocol.md`, "Clients check every leaf"). Present exactly when
    /// `server_signature` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<ServerVerifyKey>,
    /// The lookup proof of the user in their server's key directory, with its signed root
    /// (and, for another server's user, the root this server witnessed for that epoch).
    /// Absent only when the user's server does not federate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<TransparencyLookup>,
}

/// A server's federation public key as relayed to clients with a signed device list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerVerifyKey {
    /// The key's id (`ed25519:<id>`), as `ServerSignature::key_id` names it.
    pub key_id: String,
    /// Base64 (standard alphabet, unpadded) of the 32-byte Ed25519 public key.
    pub key: String,
}
