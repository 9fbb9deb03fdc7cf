//! Optional members of request bodies: absent means "not given"; when present, a member
//! must have its type. serde's `Option` would also take `null`, which the OpenAPI
//! documents do not allow (`{"invite_token": null}` is not a string), so the request
//! types use these with `#[serde(default)]`.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

/// `deserialize_with` for an `Option<T>` member that may be absent but not `null`.
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `deserialize_with` for an optional RFC 3339 time that may be absent but not `null`.
pub fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    time::serde::rfc3339::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct S {
        #[serde(default, deserialize_with = "super::not_null")]
        name: Option<String>,
        #[serde(default, deserialize_with = "super::rfc3339")]
        at: Option<time::OffsetDateTime>,
    }

    #[test]
    fn absent_is_none_null_is_refused() {
        assert!(serde_json::from_str::<S>("{}").is_ok_and(|s| s.name.is_none() && s.at.is_none()));
        assert!(serde_json::from_str::<S>(r#"{"name": "x", "at": "2026-01-01T00:00:00Z"}"#).is_ok());
        assert!(serde_json::from_str::<S>(r#"{"name": null}"#).is_err());
        assert!(serde_json::from_str::<S>(r#"{"at": null}"#).is_err());
        assert!(serde_json::from_str::<S>(r#"{"name": 5}"#).is_err());
    }
}
