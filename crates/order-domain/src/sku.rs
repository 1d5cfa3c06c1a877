use serde::{Deserialize, Serialize};

use crate::invalid_value::{excerpt, string_value};
use crate::InvalidValue;

/// A stock keeping unit, the shop's code for one product: 1 to 64 of
/// `[A-Za-z0-9._-]`. Case matters (`dog-food` and `DOG-FOOD` are two products).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;

    fn parse(value: String) -> Result<Self, InvalidValue> {
        let ok = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(value))
        } else {
            Err(InvalidValue::new(
                "sku",
                format_args!(
                    "expected 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'; got \"{}\"",
                    excerpt(&value)
                ),
            ))
        }
    }
}

string_value!(Sku);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_codes_of_letters_digits_dots_underscores_and_hyphens() {
        for ok in ["DOG-FOOD-3KG", "a", "v1.2_b-3", "..", &"Z".repeat(64)] {
            assert_eq!(Sku::try_from(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn it_refuses_empty_long_and_unsafe_codes() {
        for bad in [
            "",
            &"Z".repeat(65),
            "../etc/passwd",
            "a b",
            "x';--",
            "sku%20",
            "ñandú",
            "a\0",
        ] {
            assert_eq!(Sku::try_from(bad).unwrap_err().field, "sku", "{bad:?}");
        }
    }
}
