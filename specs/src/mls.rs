//! The MLS profile both sides agree on (see DESIGN.md, "MLS profile").

use crate::ids::{DeviceId, UserId};

/// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519` (RFC 9420, 17.1).
pub const CIPHERSUITE: u16 = 0x0001;

/// Most key packages one upload may carry, and most unclaimed ones a device may hold.
pub const MAX_KEY_PACKAGES_PER_UPLOAD: usize = 100;
pub const MAX_KEY_PACKAGES_PER_DEVICE: i64 = 500;

/// The identity in a device's MLS BasicCredential: `user_id/device_id`. The hub and the
/// key package directory check that a device only uses its own.
pub fn credential_identity(user: &UserId, device: &DeviceId) -> Vec<u8> {
    format!("{user}/{device}").into_bytes()
}

/// The user and device a BasicCredential names, if it is well formed.
pub fn parse_credential_identity(identity: &[u8]) -> Option<(UserId, DeviceId)> {
    let text = std::str::from_utf8(identity).ok()?;
    let (user, device) = text.rsplit_once('/')?;
    Some((UserId::parse(user).ok()?, DeviceId::parse(device).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trip() {
        let user = UserId::parse("alice@a.example:8443").expect("user");
        let device = DeviceId::parse("ABC123").expect("device");
        let identity = credential_identity(&user, &device);
        assert_eq!(identity, b"alice@a.example:8443/ABC123");
        assert_eq!(parse_credential_identity(&identity), Some((user, device)));
        for bad in [
            &b"alice@a.example"[..],
            b"/ABC",
            b"alice@a.example/",
            b"\xff/ABC",
            b"Alice@a.example/ABC",
        ] {
            assert_eq!(parse_credential_identity(bad), None);
        }
    }
}
