//! The hub's signature on each message it ordered.
//!
//! A follower stores what the hub sends it and may later hand it on (backfill, or another
//! server relaying), so each ordered message carries its own signature rather than relying
//! only on the request it came in: whoever holds a message can check, with the hub's
//! published keys, that the hub gave it this sequence number in this group. The signature
//! covers the canonical JSON of `{"message": <OrderedMessage>, "signed_at_ms": <ms>}`.

use parley_specs::federation_api::{HubSignature, OrderedMessage, SignedMessage};

use crate::key_document::VerifiedKeys;
use crate::server_key::ServerKeyring;
use crate::signed_object::{self, Fault, Signed};

/// The name the signed message stands under (see `signed_object`).
const NAME: &str = "message";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSignatureError {
    #[error("message {seq} of {group} is signed by {signer}, not by the group's hub {hub}")]
    NotTheHub {
        group: String,
        seq: i64,
        hub: String,
        signer: String,
    },
    #[error("the hub signature on message {seq} of {group} is malformed: {reason}")]
    Malformed { group: String, seq: i64, reason: String },
    #[error("{hub} has no key {key_id} valid when message {seq} of {group} was signed")]
    UnknownKey {
        group: String,
        seq: i64,
        hub: String,
        key_id: String,
    },
    #[error("the hub signature on message {seq} of {group} does not verify")]
    BadSignature { group: String, seq: i64 },
}

/// A message whose hub signature was checked against its group's hub's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMessage(OrderedMessage);

impl VerifiedMessage {
    pub fn message(&self) -> &OrderedMessage {
        &self.0
    }

    pub fn into_message(self) -> OrderedMessage {
        self.0
    }
}

/// Signs a message this server (its hub) ordered.
pub fn sign(keyring: &ServerKeyring, message: OrderedMessage, now_ms: i64) -> SignedMessage {
    let signed = signed_object::sign(keyring, NAME, &message, now_ms);
    SignedMessage {
        hub_signature: HubSignature {
            key_id: signed.key_id,
            signed_at_ms: signed.signed_at_ms,
            signature: signed.signature,
        },
        message,
    }
}

/// Checks that `signed` was signed by its group's hub, whose verified keys are `hub_keys`.
pub fn verify(signed: SignedMessage, hub_keys: &VerifiedKeys) -> Result<VerifiedMessage, HubSignatureError> {
    let SignedMessage { message, hub_signature } = signed;
    let group = message.group_id.to_string();
    let seq = message.seq;
    let hub = message.group_id.hub();
    if hub_keys.server_name != hub {
        return Err(HubSignatureError::NotTheHub {
            group,
            seq,
            hub: hub.to_string(),
            signer: hub_keys.server_name.to_string(),
        });
    }
    let signature = Signed {
        key_id: hub_signature.key_id,
        signed_at_ms: hub_signature.signed_at_ms,
        signature: hub_signature.signature,
    };
    signed_object::verify(hub_keys, NAME, &message, &signature).map_err(|fault| match fault {
        Fault::Malformed(reason) => HubSignatureError::Malformed { group, seq, reason },
        Fault::UnknownKey(key_id) => HubSignatureError::UnknownKey {
            group,
            seq,
            hub: hub.to_string(),
            key_id,
        },
        Fault::BadSignature => HubSignatureError::BadSignature { group, seq },
    })?;
    Ok(VerifiedMessage(message))
}

#[cfg(test)]
mod tests {
    use parley_specs::federation_api::OrderedKind;
    use parley_specs::groups_api::GroupMember;
    use parley_specs::{DeviceId, GroupId, ServerName, UserId};

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

    fn message() -> OrderedMessage {
        OrderedMessage {
            group_id: GroupId::parse("g1@a.test").unwrap(),
            seq: 7,
            epoch: 2,
            kind: OrderedKind::Application,
            sender: GroupMember {
                user_id: UserId::parse("bob@b.test").unwrap(),
                device_id: DeviceId::parse("DEV1").unwrap(),
            },
            payload: b"ciphertext".to_vec().into(),
            welcome: None,
            members: None,
            sent_at_ms: NOW - 10,
            expires_at_ms: None,
        }
    }

    #[test]
    fn a_signed_message_verifies_after_a_json_round_trip() {
        let hub = ServerKeyring::generate();
        let signed = sign(&hub, message(), NOW);
        let wire = serde_json::to_string(&signed).unwrap();
        let received: SignedMessage = serde_json::from_str(&wire).unwrap();
        let verified = verify(received, &keys_of(&hub, "a.test")).unwrap();
        assert_eq!(verified.into_message(), message());
    }

    #[test]
    fn any_change_to_the_message_breaks_the_signature() {
        let hub = ServerKeyring::generate();
        let keys = keys_of(&hub, "a.test");
        let mut reordered = sign(&hub, message(), NOW);
        reordered.message.seq = 8;
        assert!(matches!(
            verify(reordered, &keys),
            Err(HubSignatureError::BadSignature { .. })
        ));
        let mut resent = sign(&hub, message(), NOW);
        resent.hub_signature.signed_at_ms += 1;
        assert!(matches!(
            verify(resent, &keys),
            Err(HubSignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn only_the_groups_hub_can_sign_its_messages() {
        let follower = ServerKeyring::generate();
        let signed = sign(&follower, message(), NOW);
        let err = verify(signed, &keys_of(&follower, "b.test")).unwrap_err();
        assert!(matches!(err, HubSignatureError::NotTheHub { .. }), "{err}");
        let imposter = sign(&ServerKeyring::generate(), message(), NOW);
        let err = verify(imposter, &keys_of(&ServerKeyring::generate(), "a.test")).unwrap_err();
        assert!(matches!(err, HubSignatureError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn a_retired_key_still_verifies_what_it_signed_before_rotation() {
        let mut hub = ServerKeyring::generate();
        let signed = sign(&hub, message(), NOW - 1000);
        hub.rotate(NOW - 500, false);
        assert!(verify(signed.clone(), &keys_of(&hub, "a.test")).is_ok());
        let mut late = signed;
        late.hub_signature.signed_at_ms = NOW;
        assert!(verify(late, &keys_of(&hub, "a.test")).is_err());
    }
}
