//! What an application message carries inside its MLS encryption: a small JSON object
//! with a `type`, so that more kinds (typing, presence, reactions) can be added later.
//! A client ignores types it does not know.
//!
//! - `{"type":"text","body":"…","expires_at":"2026-01-02T03:04:05Z"}` — a text message;
//!   `expires_at` (optional) repeats the submit's expiry under the sender's signature, so
//!   a server cannot make a disappearing message permanent by dropping it.
//! - `{"type":"leave"}` — the sender's user leaves the group and asks the other members'
//!   devices to remove all of its devices (MLS does not let a member remove itself).

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
    /// A type this version does not know (ignored).
    #[serde(other)]
    Unknown,
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
            Envelope::parse(br#"{"type":"typing","on":true}"#),
            Some(Envelope::Unknown)
        );
        assert_eq!(Envelope::parse(b"not json"), None);
        assert_eq!(Envelope::parse(br#"{"body":"no type"}"#), None);
    }
}
