use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// A change of stock on hand: not zero, and at most a million units either way
/// (a typo of a few extra digits is refused rather than booked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct StockDelta(i64);

impl StockDelta {
    pub const MAX_ABS: i64 = 1_000_000;

    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for StockDelta {
    type Error = InvalidValue;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        if value == 0 {
            Err(InvalidValue::new("delta", "must not be zero"))
        } else if value.checked_abs().is_none_or(|abs| abs > Self::MAX_ABS) {
            Err(InvalidValue::new(
                "delta",
                format_args!("must be between -1000000 and 1000000; got {value}"),
            ))
        } else {
            Ok(Self(value))
        }
    }
}

impl From<StockDelta> for i64 {
    fn from(value: StockDelta) -> Self {
        value.0
    }
}

/// Why stock changed. A receipt only ever adds; an adjustment or a count
/// may go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockReason {
    Received,
    Adjustment,
    Count,
}

impl StockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Adjustment => "adjustment",
            Self::Count => "count",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_accepts_non_zero_changes_up_to_a_million_either_way() {
        for ok in [1, -1, 50, 1_000_000, -1_000_000] {
            assert_eq!(StockDelta::try_from(ok).unwrap().get(), ok);
        }
    }

    #[test]
    fn it_refuses_zero_and_implausible_changes() {
        for bad in [0, 1_000_001, -1_000_001, i64::MIN, i64::MAX] {
            assert_eq!(StockDelta::try_from(bad).unwrap_err().field, "delta");
        }
    }

    #[test]
    fn it_reads_reasons_in_snake_case() {
        assert_eq!(
            serde_json::from_str::<StockReason>("\"received\"").unwrap(),
            StockReason::Received
        );
        assert!(serde_json::from_str::<StockReason>("\"stolen\"").is_err());
    }
}
