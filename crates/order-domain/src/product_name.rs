use serde::{Deserialize, Serialize};

use crate::invalid_value::string_value;
use crate::InvalidValue;

/// What a product is called on receipts and order lines: 1 to 200 characters,
/// not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    fn parse(value: String) -> Result<Self, InvalidValue> {
        if value.trim().is_empty() {
            return Err(InvalidValue::new("name", "must not be blank"));
        }
        let chars = value.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "name",
                format_args!("must be at most 200 characters; got {chars}"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(value))
    }
}

string_value!(ProductName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_ordinary_product_names() {
        for ok in ["Dog food 3 kg", "Café ☕", &"n".repeat(200)] {
            assert_eq!(ProductName::try_from(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn it_refuses_blank_long_and_control_character_names() {
        for bad in ["", " \t", "a\0", "a\nb", &"n".repeat(201)] {
            assert_eq!(ProductName::try_from(bad).unwrap_err().field, "name");
        }
    }
}
