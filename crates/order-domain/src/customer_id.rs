use serde::{Deserialize, Serialize};

use crate::invalid_value::string_value;
use crate::InvalidValue;

/// Who places and owns an order: the `sub` of the customer's token, 1 to 255
/// bytes of printable text (no control characters, which also keeps NUL, which
/// PostgreSQL text cannot hold, out of the store).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

impl CustomerId {
    pub const MAX_LEN: usize = 255;

    fn parse(value: String) -> Result<Self, InvalidValue> {
        if value.trim().is_empty() {
            return Err(InvalidValue::new("customer id", "must not be blank"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidValue::new(
                "customer id",
                format_args!("must be at most 255 bytes; got {}", value.len()),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "customer id",
                "must not contain control characters",
            ));
        }
        Ok(Self(value))
    }
}

string_value!(CustomerId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_printable_subjects() {
        for ok in ["cust-1", "auth0|5f1c", "ana@example.com", "Jörg Müller"] {
            assert_eq!(CustomerId::try_from(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn it_refuses_blank_long_and_control_character_subjects() {
        for bad in ["", "   ", "a\0b", "line\nbreak", &"c".repeat(256)] {
            assert_eq!(CustomerId::try_from(bad).unwrap_err().field, "customer id");
        }
    }
}
