//! Canonical JSON for signing: object keys sorted, no insignificant whitespace. Both sides
//! produce the bytes from a parsed `serde_json::Value` (whose maps are ordered), so a
//! verifier never depends on how the sender laid out its JSON.

use serde_json::Value;

pub fn to_bytes(value: &Value) -> Vec<u8> {
    // A Value always serializes (its map keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let value: Value = serde_json::from_str(r#"{ "b": 1, "a": {"d": [1, 2], "c": "x"} }"#).unwrap();
        assert_eq!(to_bytes(&value), br#"{"a":{"c":"x","d":[1,2]},"b":1}"#);
    }
}
