//! What an application message carries inside its MLS encryption: a small JSON object
//! with a `type`, so that more kinds (typing, presence, reactions) can be added later.
//! A client ignores types it does not know.
//!
//! - `{"type":"text","body":"…","expires_at":"2026-01-02T03:04:05Z"}` — a text message;
//!   `expires_at` (optional) repeats the submit's expiry under the sender's signature, so
//!   a server cannot make a disappearing message permanent by dropping it.
//! - `{"type":"leave"}` — the sender's user leaves the group and asks the other members'
//!   devices to remove all of its devices (MLS does not let a member remove itself).
//! - `{"type":"typing","typing":true}` — the sender is typing (or stopped); not kept.
//! - `{"type":"presence","presence":"online"|"away"}` — the sender's presence; not kept.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One application message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Envelope {
    /// A text message.
    Text {
        /// The text.
        body: String,
        /// When it disappears.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::serde::rfc3339::option"
        )]
        expires_at: Option<OffsetDateTime>,
    },
    /// The sender's user leaves the group.
    Leave,
    /// The sender is typing (or stopped typing) in the group. Not kept in the history.
    Typing {
        /// Whether they are typing.
        #[serde(default)]
        typing: bool,
    },
    /// The sender's presence, sent to every group. Not kept in the history.
    Presence {
        /// Online or away.
        presence: Presence,
    },
    /// A type this version does not know (ignored).
    #[serde(other)]
    Unknown,
}

/// Whether a user is at their device, as their client announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// A window of the client is open.
    Online,
    /// No window is open.
    Away,
}

impl Envelope {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serializing this enum to JSON cannot fail (string keys, no maps with other keys).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The envelope in `bytes`; `None` when it is not one (not JSON, no `type`, ...).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn wire_form() {
        let text = Envelope::Text {
            body: "hi".into(),
            expires_at: None,
        };
        assert_eq!(text.to_bytes(), br#"{"type":"text","body":"hi"}"#);
        let expiring = Envelope::Text {
            body: "bye".into(),
            expires_at: Some(datetime!(2026-01-02 03:04:05 UTC)),
        };
        assert_eq!(
            String::from_utf8(expiring.to_bytes()).expect("utf-8"),
            r#"{"type":"text","body":"bye","expires_at":"2026-01-02T03:04:05Z"}"#
        );
        assert_eq!(Envelope::parse(&expiring.to_bytes()), Some(expiring));
        assert_eq!(Envelope::Leave.to_bytes(), br#"{"type":"leave"}"#);
        assert_eq!(
            Envelope::parse(br#"{"type":"reaction","emoji":"+1"}"#),
            Some(Envelope::Unknown)
        );
        let typing = Envelope::Typing { typing: true };
        assert_eq!(typing.to_bytes(), br#"{"type":"typing","typing":true}"#);
        assert_eq!(Envelope::parse(&typing.to_bytes()), Some(typing));
        let away = Envelope::Presence {
            presence: Presence::Away,
        };
        assert_eq!(away.to_bytes(), br#"{"type":"presence","presence":"away"}"#);
        assert_eq!(Envelope::parse(&away.to_bytes()), Some(away));
        assert_eq!(
            Envelope::parse(br#"{"type":"presence","presence":"dancing"}"#),
            None,
            "an unknown presence is not an envelope"
        );
        assert_eq!(Envelope::parse(b"not json"), None);
        assert_eq!(Envelope::parse(br#"{"body":"no type"}"#), None);
    }
}
