//! Parley's wire contract, shared by the homeserver and the SDK so that both sides
//! compile against one definition: identifiers, endpoints (path, method, auth),
//! request and response bodies, and the stable error codes.
//!
//! The human-readable contract lives beside this crate in `specs/openapi/` and
//! `specs/protocol.md`; tests keep them in step with this code.

pub mod admin_api;
pub mod bytes;
pub mod client_api;
pub mod endpoints;
pub mod error;
pub mod federation_api;
pub mod files_api;
pub mod groups_api;
pub mod ids;
pub mod ints;
pub mod key_backup_api;
pub mod keys_api;
pub mod mls;
pub mod optional;
pub mod roles;
pub mod transparency_api;

pub use bytes::Base64Bytes;
pub use error::{ErrorBody, ErrorCode};
pub use ids::{DeviceId, GroupId, IdError, Localpart, ServerName, UserId};
