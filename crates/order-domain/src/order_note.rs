use serde::{Deserialize, Serialize};

use crate::invalid_value::string_value;
use crate::InvalidValue;

/// The customer's free-text note on a checkout: at most 1,000 characters.
/// Line breaks and tabs are kept; other control characters (NUL among them,
/// which PostgreSQL text cannot store) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderNote(String);

impl OrderNote {
    pub const MAX_CHARS: usize = 1000;

    fn parse(value: String) -> Result<Self, InvalidValue> {
        let chars = value.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "note",
                format_args!("must be at most 1000 characters; got {chars}"),
            ));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(InvalidValue::new(
                "note",
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(value))
    }
}

string_value!(OrderNote);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_line_breaks_and_accepts_up_to_1000_characters() {
        for ok in ["", "leave at the door\nthanks", &"é".repeat(1000)] {
            assert_eq!(OrderNote::try_from(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn it_refuses_long_notes_and_nul_bytes() {
        for bad in [&"é".repeat(1001), "nul\0", "bell\u{7}"] {
            assert_eq!(OrderNote::try_from(bad).unwrap_err().field, "note");
        }
    }
}
