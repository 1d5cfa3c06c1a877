//! Whole numbers in request bodies: `2`, `2.0` and `2e0` alike.
//!
//! JSON Schema (and so the OpenAPI document, and the tools that generate
//! requests from it) calls every number without a fractional part an
//! integer; a client that serializes 2 as `2.0` means 2. A fractional
//! number, or one beyond what a double holds exactly (2^53), is refused
//! naming the field, as before.

use serde::de::{self, Deserializer, Visitor};

/// Largest magnitude a JSON number with a decimal point or exponent is taken
/// at: beyond it, a double no longer holds every whole number exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
        if value.fract() == 0.0 && value.abs() <= EXACT {
            // Exact: a whole number within 2^53.
            #[allow(clippy::cast_possible_truncation)]
            Ok(value as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(value), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "super::deserialize")]
        quantity: i64,
    }

    fn quantity(json: &str) -> Result<i64, String> {
        serde_json::from_str::<Line>(&format!("{{\"quantity\":{json}}}"))
            .map(|l| l.quantity)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn it_takes_whole_numbers_in_any_notation_and_refuses_fractions() {
        assert_eq!(quantity("2"), Ok(2));
        assert_eq!(quantity("2.0"), Ok(2));
        assert_eq!(quantity("2e3"), Ok(2000));
        assert_eq!(quantity("-5.0"), Ok(-5));
        assert_eq!(quantity("9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "1.5",
            "1e300",
            "9223372036854775808",
            "\"2\"",
            "null",
            "true",
        ] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }
}
