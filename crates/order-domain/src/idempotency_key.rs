use serde::{Deserialize, Serialize};

use crate::invalid_value::string_value;
use crate::InvalidValue;

/// The client's name for one checkout attempt (or one stock movement), reused
/// on every retry of that attempt: 1 to 255 visible ASCII characters
/// (0x21-0x7E), compared byte for byte.
///
/// Together with the tenant it *is* the identity of the order it creates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    // AUDIT-106: Idempotency key. The one check of a key's form; the HTTP
    // header, the client and every stored event go through it.
    fn parse(value: String) -> Result<Self, InvalidValue> {
        let len = value.len();
        if len == 0 {
            return Err(InvalidValue::new("idempotency key", "must not be empty"));
        }
        if len > Self::MAX_LEN {
            return Err(InvalidValue::new(
                "idempotency key",
                format_args!("must be at most 255 characters; got {len} bytes"),
            ));
        }
        if let Some(pos) = value.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(InvalidValue::new(
                "idempotency key",
                format_args!(
                    "must be visible ASCII (0x21-0x7E) only; byte {pos} is not (spaces, control characters and non-ASCII are refused)"
                ),
            ));
        }
        Ok(Self(value))
    }
}

string_value!(IdempotencyKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_uuids_and_any_visible_ascii_up_to_255_characters() {
        for ok in [
            "6f1c8a52-1d9e-4a8e-9c2a-5d2b7f0e4c11",
            "k",
            "!~\"'`;--",
            "../../etc/passwd",
            "'; DROP TABLE store_orders; --".replace(' ', "_").as_str(),
            &"x".repeat(255),
        ] {
            assert_eq!(IdempotencyKey::try_from(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn it_refuses_empty_long_spaced_control_and_non_ascii_keys() {
        for bad in [
            "",
            &"x".repeat(256),
            "two words",
            "tab\there",
            "nul\0byte",
            "newline\n",
            "del\u{7f}",
            "clé",
        ] {
            let err = IdempotencyKey::try_from(bad).unwrap_err();
            assert_eq!(err.field, "idempotency key");
        }
    }

    #[test]
    fn it_does_not_echo_a_huge_key_back_in_the_error() {
        let err = IdempotencyKey::try_from("y".repeat(100_000)).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
