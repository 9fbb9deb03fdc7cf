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

    #[test]
    fn canonical_bytes_are_a_fixed_point_for_floats_too() {
        // Found by the canonical_json fuzz target: without exact float parsing, a number
        // beyond i64 read back from its canonical form was another float.
        for text in [
            "-444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444440",
            "[0.1, 1e300, 5e-324, 1.7976931348623157e308]",
        ] {
            let bytes = to_bytes(&serde_json::from_str(text).unwrap());
            assert_eq!(to_bytes(&serde_json::from_slice(&bytes).unwrap()), bytes, "{text}");
        }
    }
}
