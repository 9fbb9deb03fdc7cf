//! Bodies of the federation API (`/federation/v1`); the key document lives with its
//! verification in the `parley-federation` crate.

use serde::{Deserialize, Serialize};

use crate::ServerName;

/// Answer of `GET /federation/v1/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationVersion {
    /// The server that answered.
    pub server_name: ServerName,
    /// Its software version.
    pub version: String,
    /// The origin it authenticated the request as.
    pub origin: ServerName,
}
