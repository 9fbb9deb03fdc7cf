//! Server-to-server plumbing for Parley homeservers.
//!
//! - [`server_key`]: a homeserver's ed25519 signing keys, kept in an owner-only key file,
//!   with rotation that keeps retired public keys verifiable;
//! - [`key_document`]: the self-signed document a server publishes about its keys, and its
//!   verification by peers;
//! - [`request_auth`]: the signature every federation request carries (method, path,
//!   origin, destination, timestamp, body hash) and its verification;
//! - [`hub_signature`]: the hub's signature on each message it ordered, which travels
//!   with the message wherever it is stored or relayed;
//! - [`device_keys`]: a server's signature on its users' entries in the device key
//!   directory (each device's MLS signature key), checkable wherever they are relayed;
//! - [`discovery`]: where a server name's federation API listens (static peers, the
//!   `/.well-known/parley/server` delegation, the fallback), cached;
//! - [`client`]: outbound federation requests over mutual TLS, signed, to the address
//!   discovery gives, with the certificate checked against the server name.
//!
//! Values that have been checked have their own types ([`key_document::VerifiedKeys`],
//! [`request_auth::VerifiedRequest`], [`hub_signature::VerifiedMessage`],
//! [`device_keys::VerifiedDeviceKeys`]) so code cannot confuse them with what arrived.

pub mod canonical;
pub mod client;
pub mod device_keys;
pub mod discovery;
pub mod hub_signature;
pub mod key_document;
pub mod request_auth;
pub mod server_key;
mod signed_object;
pub mod transparency_root;

pub use server_key::{KeyId, ServerKeyring};

/// The base64 alphabet of every key and signature in federation documents.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;
