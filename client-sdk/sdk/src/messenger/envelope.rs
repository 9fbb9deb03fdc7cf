//! What an application message carries inside its MLS encryption: a small JSON object
//! with a `type`, so that more kinds (typing, presence, reactions) can be added later.
//! A client ignores types it does not know.
//!
//! - `{"type":"text","body":"…","expires_at":"2026-01-02T03:04:05Z"}` — a text message;
//!   `expires_at` (optional) repeats the submit's expiry under the sender's signature, so
//!   a server cannot make a disappearing message permanent by dropping it.
//!   `reply_to` (optional) is the hub's sequence number of the message it answers.
//! - `{"type":"reaction","target":12,"emoji":"👍"}` — the sender's user reacts to message
//!   #12 (`"remove":true` takes the reaction back).
//! - `{"type":"edit","target":12,"body":"…"}` — the sender's user replaces the text of its
//!   own message #12.
//! - `{"type":"delete","target":12}` — the sender's user deletes its own message #12 for
//!   everyone.
//! - `{"type":"leave"}` — the sender's user leaves the group and asks the other members'
//!   devices to remove all of its devices (MLS does not let a member remove itself).
//! - `{"type":"typing","typing":true}` — the sender is typing (or stopped); not kept.
//! - `{"type":"presence","presence":"online"|"away"}` — the sender's presence; not kept.
//! - `{"type":"file","server":"a.example","blob_id":"…","key":"…","sha256":"…","size":n,
//!   "chunk_size":n,"media_type":"image/png","name":"cat.png","text":"…","expires_at":"…"}`
//!   — an encrypted file ([`FileAttachment`]), with optional text.

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
        /// The message this one answers (its sequence number).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i64>,
    },
    /// A reaction to a message, or (with `remove`) taking one back.
    Reaction {
        /// The message reacted to (its sequence number).
        target: i64,
        /// The reaction: an emoji (at most [`MAX_EMOJI_BYTES`], no spaces or controls).
        emoji: String,
        /// Takes the sender user's reaction `emoji` back.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove: bool,
    },
    /// A new text for a message of the sender's user.
    Edit {
        /// The message edited (its sequence number).
        target: i64,
        /// The new text.
        body: String,
    },
    /// Deletes a message of the sender's user for everyone.
    Delete {
        /// The message deleted (its sequence number).
        target: i64,
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
    /// An encrypted file, with optional text.
    File(FileAttachment),
    /// A type this version does not know (ignored).
    #[serde(other)]
    Unknown,
}

/// A file sent to a group: where its ciphertext is and how to decrypt and check it
/// (`crate::files` describes the encryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAttachment {
    /// The server it was uploaded to (its origin).
    pub server: parley_specs::ServerName,
    /// Its id there.
    pub blob_id: String,
    /// The file's key, unpadded base64url (32 bytes).
    pub key: String,
    /// SHA-256 of the whole ciphertext, hex.
    pub sha256: String,
    /// The file's size in bytes (of the plaintext).
    pub size: u64,
    /// Plaintext bytes per encrypted chunk.
    pub chunk_size: u32,
    /// Its media type as the sender's device guessed it (e.g. `image/png`).
    pub media_type: String,
    /// Its file name, without any directory.
    pub name: String,
    /// Text sent with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// When it disappears (the submit's expiry under the sender's signature).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
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

/// Longest reaction, in bytes (an emoji with modifiers and joiners fits easily).
pub const MAX_EMOJI_BYTES: usize = 32;

/// Whether `emoji` may be a reaction: 1 to [`MAX_EMOJI_BYTES`] bytes, without white space
/// or control characters. `Err` says why not.
pub fn check_emoji(emoji: &str) -> Result<(), String> {
    if emoji.is_empty() {
        return Err("a reaction cannot be empty".into());
    }
    if emoji.len() > MAX_EMOJI_BYTES {
        return Err(format!(
            "a reaction is at most {MAX_EMOJI_BYTES} bytes; this one is {}",
            emoji.len()
        ));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a reaction cannot contain spaces or control characters".into());
    }
    Ok(())
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
            reply_to: None,
        };
        assert_eq!(text.to_bytes(), br#"{"type":"text","body":"hi"}"#);
        let expiring = Envelope::Text {
            body: "bye".into(),
            expires_at: Some(datetime!(2026-01-02 03:04:05 UTC)),
            reply_to: None,
        };
        assert_eq!(
            String::from_utf8(expiring.to_bytes()).expect("utf-8"),
            r#"{"type":"text","body":"bye","expires_at":"2026-01-02T03:04:05Z"}"#
        );
        assert_eq!(Envelope::parse(&expiring.to_bytes()), Some(expiring));
        assert_eq!(Envelope::Leave.to_bytes(), br#"{"type":"leave"}"#);
        assert_eq!(
            Envelope::parse(br#"{"type":"sticker","pack":"cats"}"#),
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
        let file = Envelope::File(FileAttachment {
            server: parley_specs::ServerName::parse("a.example").expect("name"),
            blob_id: "b".repeat(43),
            key: "k".repeat(43),
            sha256: "00".repeat(32),
            size: 5,
            chunk_size: 65536,
            media_type: "text/plain".into(),
            name: "a.txt".into(),
            text: None,
            expires_at: None,
        });
        let json = String::from_utf8(file.to_bytes()).expect("utf-8");
        assert!(json.starts_with(r#"{"type":"file","server":"a.example","#), "{json}");
        assert_eq!(Envelope::parse(json.as_bytes()), Some(file));
        assert_eq!(Envelope::parse(b"not json"), None);
        assert_eq!(
            Envelope::parse(br#"{"type":"reaction","emoji":"+1"}"#),
            None,
            "no target"
        );
    }

    #[test]
    fn replies_reactions_edits_and_deletes() {
        let round_trip = |envelope: Envelope, wire: &str| {
            assert_eq!(String::from_utf8(envelope.to_bytes()).expect("utf-8"), wire);
            assert_eq!(Envelope::parse(wire.as_bytes()), Some(envelope));
        };
        round_trip(
            Envelope::Text {
                body: "yes".into(),
                expires_at: None,
                reply_to: Some(7),
            },
            r#"{"type":"text","body":"yes","reply_to":7}"#,
        );
        round_trip(
            Envelope::Reaction {
                target: 7,
                emoji: "👍".into(),
                remove: false,
            },
            r#"{"type":"reaction","target":7,"emoji":"👍"}"#,
        );
        round_trip(
            Envelope::Reaction {
                target: 7,
                emoji: "👍".into(),
                remove: true,
            },
            r#"{"type":"reaction","target":7,"emoji":"👍","remove":true}"#,
        );
        round_trip(
            Envelope::Edit {
                target: 7,
                body: "fixed".into(),
            },
            r#"{"type":"edit","target":7,"body":"fixed"}"#,
        );
        round_trip(Envelope::Delete { target: 7 }, r#"{"type":"delete","target":7}"#);
        assert_eq!(Envelope::parse(br#"{"type":"edit","target":"7","body":"x"}"#), None);
        assert_eq!(Envelope::parse(br#"{"type":"delete"}"#), None);
    }

    #[test]
    fn emoji_rules() {
        assert!(check_emoji("👍").is_ok());
        assert!(check_emoji("👩\u{200d}👩\u{200d}👧").is_ok());
        assert!(check_emoji("+1").is_ok());
        assert!(check_emoji("").is_err());
        assert!(check_emoji("a b").is_err());
        assert!(check_emoji("\u{1b}[2J").is_err());
        assert!(check_emoji(&"👍".repeat(9)).is_err(), "36 bytes");
        assert_eq!(Envelope::parse(br#"{"body":"no type"}"#), None);
    }
}
