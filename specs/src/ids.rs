//! Validated identifiers. A value of these types has passed its rules, so code that
//! holds one never re-checks it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("username must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")]
    InvalidLocalpart,
    #[error("server name must be a DNS name, optionally followed by :port")]
    InvalidServerName,
    #[error("user id must look like localpart@server")]
    InvalidUserId,
    #[error("device id must be 1 to 64 characters of A-Z, a-z or 0-9")]
    InvalidDeviceId,
    #[error("group id must look like <1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'>@<hub server>")]
    InvalidGroupId,
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The part of a user id before the `@`: lowercase `[a-z0-9._-]`, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Localpart(String);
string_newtype!(Localpart);

impl Localpart {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::InvalidLocalpart)
        }
    }
}

/// A homeserver's name: a DNS name, with an optional `:port` for development.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerName(String);
string_newtype!(ServerName);

impl ServerName {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (host, port) = match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        // Digits only, no leading zero (`u16::from_str` would take `+80` and `080`): one
        // spelling per port, as the OpenAPI documents' pattern has it.
        let port_ok = port
            .is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0') && p.parse::<u16>().is_ok());
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        // At most 253 characters in all, port included (a DNS name has at most 253).
        let host_ok = !host.is_empty() && s.len() <= 253 && host.split('.').all(label_ok);
        if port_ok && host_ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(IdError::InvalidServerName)
        }
    }

    /// The DNS name, without a development `:port`.
    pub fn host(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(host, _)| host)
    }

    /// The `:port` of a development server name.
    pub fn port(&self) -> Option<u16> {
        self.0.split_once(':').and_then(|(_, port)| port.parse().ok())
    }
}

/// `localpart@server`, e.g. `alice@a.example`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);
string_newtype!(UserId);

impl UserId {
    pub fn new(localpart: &Localpart, server: &ServerName) -> Self {
        Self(format!("{localpart}@{server}"))
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (local, server) = s.split_once('@').ok_or(IdError::InvalidUserId)?;
        let local = Localpart::parse(local).map_err(|_| IdError::InvalidUserId)?;
        let server = ServerName::parse(server).map_err(|_| IdError::InvalidUserId)?;
        Ok(Self::new(&local, &server))
    }

    pub fn localpart(&self) -> Localpart {
        let (local, _) = self.0.split_once('@').unwrap_or_default();
        Localpart(local.to_owned())
    }

    pub fn server_name(&self) -> ServerName {
        let (_, server) = self.0.split_once('@').unwrap_or_default();
        ServerName(server.to_owned())
    }
}

/// A device id, assigned by the homeserver at login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);
string_newtype!(DeviceId);

impl DeviceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::InvalidDeviceId)
        }
    }
}

/// A group: `<random>@<hub server>`. The hub, which orders the group's messages, is the
/// server where it was created and is part of its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(String);
string_newtype!(GroupId);

impl GroupId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let (local, hub) = s.split_once('@').ok_or(IdError::InvalidGroupId)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let hub = ServerName::parse(hub).map_err(|_| IdError::InvalidGroupId)?;
        if local_ok {
            Ok(Self(format!("{local}@{hub}")))
        } else {
            Err(IdError::InvalidGroupId)
        }
    }

    /// The server that orders this group.
    pub fn hub(&self) -> ServerName {
        let (_, hub) = self.0.split_once('@').unwrap_or_default();
        ServerName(hub.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localparts() {
        for ok in ["a", "alice", "bob.smith", "x_y-z.09", &"a".repeat(64)] {
            assert!(Localpart::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Alice", "al ice", "al@ice", "é", &"a".repeat(65)] {
            assert_eq!(Localpart::parse(bad), Err(IdError::InvalidLocalpart), "{bad}");
        }
    }

    #[test]
    fn server_names() {
        for ok in ["a.example", "localhost", "localhost:8443", "x-1.y.example:1"] {
            assert!(ServerName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a..example",
            "-a.example",
            "a.example:",
            "a.example:0",
            "a.example:99999",
            "a_b.example",
            "a.example:+80",
            "a.example:080",
            "a-.example",
        ] {
            assert_eq!(ServerName::parse(bad), Err(IdError::InvalidServerName), "{bad}");
        }
        assert_eq!(
            ServerName::parse("A.Example").map(|s| s.to_string()),
            Ok("a.example".into())
        );
    }

    #[test]
    fn user_ids() {
        let id = UserId::parse("alice@a.example:8443").expect("valid");
        assert_eq!(id.localpart().as_str(), "alice");
        assert_eq!(id.server_name().as_str(), "a.example:8443");
        for bad in ["alice", "@a.example", "alice@", "Alice@a.example", "a@b@c"] {
            assert!(UserId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_ids() {
        let id = GroupId::parse("Ab-c_9@hub.example:8443").expect("valid");
        assert_eq!(id.hub().as_str(), "hub.example:8443");
        for bad in [
            "",
            "abc",
            "@hub.example",
            "a b@hub.example",
            "a@",
            "a@b@c",
            &format!("{}@h", "x".repeat(65)),
        ] {
            assert_eq!(GroupId::parse(bad), Err(IdError::InvalidGroupId), "{bad}");
        }
    }

    #[test]
    fn serde_rejects_invalid() {
        assert!(serde_json::from_str::<Localpart>("\"Bad\"").is_err());
        assert!(serde_json::from_str::<DeviceId>("\"ABC123\"").is_ok());
    }
}
