use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// How many units of one product a line asks for: 1 to 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 10_000;

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = InvalidValue;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        match u32::try_from(value) {
            Ok(v) if (Self::MIN..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(InvalidValue::new(
                "quantity",
                format_args!("must be between 1 and 10000; got {value}"),
            )),
        }
    }
}

impl TryFrom<u32> for Quantity {
    type Error = InvalidValue;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::try_from(i64::from(value))
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> Self {
        value.0
    }
}

impl From<Quantity> for i64 {
    fn from(value: Quantity) -> Self {
        i64::from(value.0)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_one_to_ten_thousand() {
        for ok in [1_i64, 2, 9_999, 10_000] {
            assert_eq!(i64::from(Quantity::try_from(ok).unwrap()), ok);
        }
    }

    #[test]
    fn it_refuses_zero_negative_and_too_many() {
        for bad in [0_i64, -1, 10_001, i64::from(u32::MAX) + 1, i64::MIN] {
            assert_eq!(Quantity::try_from(bad).unwrap_err().field, "quantity");
        }
    }

    #[test]
    fn it_refuses_out_of_range_quantities_when_deserialized() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("1.5").is_err());
        assert!(serde_json::from_str::<Quantity>("\"2\"").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("7").unwrap().get(), 7);
    }
}
