//! Bodies of the MLS key package directory (`/client/v1/keys/...`).

use serde::{Deserialize, Serialize};

use crate::bytes::Base64Bytes;
use crate::ids::{DeviceId, UserId};

/// KeyPackages of the calling device, each TLS-serialized (RFC 9420 `KeyPackage`). One
/// may carry the `last_resort` extension; it replaces the device's previous last-resort one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadKeyPackagesRequest {
    pub key_packages: Vec<Base64Bytes>,
}

/// How many key packages of the calling device wait to be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPackageCount {
    /// Unclaimed, unexpired, one-time key packages.
    pub available: i64,
    /// Whether a last-resort key package is stored (handed out when none is available).
    pub last_resort: bool,
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
