//! Integers in request bodies. JSON has one number type: `842` and `842.0` are the same
//! number, and JSON Schema (which the OpenAPI documents use) counts both as an `integer`.
//! serde refuses `842.0` for an `i64`, so a field an API document declares as an integer
//! uses these to take any number without a fractional part within the field's range;
//! `842.5`, `1e300` and strings stay refused. Answers always carry plain integers.

use serde::de::{self, Deserializer, Visitor};

/// `deserialize_with` for an `i64`.
pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Integer::<i64>(std::marker::PhantomData))
}

/// `deserialize_with` for a `u64` that the documents declare as `int64` with `minimum: 0`:
/// 0 to `i64::MAX` (what PostgreSQL's `bigint` holds).
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = d.deserialize_any(Integer::<u64>(std::marker::PhantomData))?;
    if i64::try_from(value).is_err() {
        return Err(de::Error::invalid_value(
            de::Unexpected::Unsigned(value),
            &"an integer from 0 to 9223372036854775807",
        ));
    }
    Ok(value)
}

/// `deserialize_with` for an `Option<i64>` that may be absent (with `#[serde(default)]`)
/// but not `null`.
pub fn option_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    i64(d).map(Some)
}

struct Integer<T>(std::marker::PhantomData<T>);

impl<'de, T> Visitor<'de> for Integer<T>
where
    T: TryFrom<i64> + TryFrom<u64>,
{
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an integer in {}", std::any::type_name::<T>())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Whole numbers strictly between -2^63 and 2^63, which `as` converts exactly; the
        // range of `T` is checked after. -2^63 itself is refused as a float: serde_json
        // hands integers below `i64::MIN` (e.g. -9223372036854775809) over as the nearest
        // float, which is -2^63; `i64::MIN` written as an integer arrives as one.
        let refused = || E::invalid_value(de::Unexpected::Float(v), &self);
        if !v.is_finite() || v.fract() != 0.0 || v.abs() >= 9_223_372_036_854_775_808.0 {
            return Err(refused());
        }
        #[allow(clippy::cast_possible_truncation)]
        let whole = v as i64;
        T::try_from(whole).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct S {
        #[serde(deserialize_with = "super::i64")]
        a: i64,
        #[serde(deserialize_with = "super::u64")]
        b: u64,
        #[serde(default, deserialize_with = "super::option_i64")]
        c: Option<i64>,
    }

    fn parse(json: &str) -> Result<(i64, u64, Option<i64>), String> {
        serde_json::from_str::<S>(json)
            .map(|s| (s.a, s.b, s.c))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_in_any_notation() {
        assert_eq!(parse(r#"{"a": 842.0, "b": 3, "c": -1.0}"#), Ok((842, 3, Some(-1))));
        assert_eq!(
            parse(r#"{"a": -9223372036854775808, "b": 9223372036854775807}"#),
            Ok((i64::MIN, i64::MAX as u64, None))
        );
        assert_eq!(parse(r#"{"a": 1e3, "b": 0.0}"#), Ok((1000, 0, None)));
    }

    #[test]
    fn fractions_out_of_range_and_strings_refused() {
        for bad in [
            r#"{"a": 842.5, "b": 0}"#,
            r#"{"a": 1e300, "b": 0}"#,
            r#"{"a": 9223372036854775808, "b": 0}"#,
            r#"{"a": -9223372036854775809, "b": 0}"#,
            r#"{"a": 1, "b": -1}"#,
            r#"{"a": 1, "b": 9223372036854775808}"#,
            r#"{"a": 1, "b": -1.0}"#,
            r#"{"a": "1", "b": 0}"#,
            r#"{"a": 1, "b": 0, "c": 0.5}"#,
            r#"{"a": 1, "b": 0, "c": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
