use serde::{Deserialize, Serialize};

use crate::invalid_value::excerpt;
use crate::{InvalidValue, Quantity};

/// An ISO 4217 currency, by its three-letter code (`PYG`, `EUR`, `USD`).
///
/// Only codes in the ISO 4217 list are accepted, so a typo such as `EUD` is
/// refused at the edge instead of creating a currency nobody can pay in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// How many digits of minor units the currency has (2 for EUR, 0 for PYG).
    pub fn minor_unit_digits(self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

impl Currency {
    /// Every ISO 4217 code a currency may be given as.
    pub fn codes() -> impl Iterator<Item = &'static str> {
        use iso_currency::IntoEnumIterator;
        iso_currency::Currency::iter().map(|c| c.code())
    }
}

impl TryFrom<&str> for Currency {
    type Error = InvalidValue;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        iso_currency::Currency::from_code(value)
            .map(Self)
            .ok_or_else(|| {
                InvalidValue::new(
                    "currency",
                    format_args!(
                        "expected an ISO 4217 code such as \"EUR\" or \"PYG\"; got \"{}\"",
                        excerpt(value)
                    ),
                )
            })
    }
}

impl TryFrom<String> for Currency {
    type Error = InvalidValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl std::str::FromStr for Currency {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::try_from(value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.code().to_owned()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why two amounts could not be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("cannot combine {0} and {1} amounts")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range (more than 9223372036854775807 minor units)")]
    Overflow,
}

/// An amount of money: integer minor units (cents, or guaraníes for PYG) and
/// its currency. Never a float. Arithmetic is checked: an overflow or a mix of
/// currencies is an error, not a wrapped number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (for EUR: cents).
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        self.amount
            .checked_add(other.amount)
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_mul(self, quantity: Quantity) -> Result<Money, MoneyError> {
        self.amount
            .checked_mul(i64::from(quantity))
            .map(|amount| Money::new(amount, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (minor units)", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::try_from("EUR").unwrap()
    }

    fn pyg() -> Currency {
        Currency::try_from("PYG").unwrap()
    }

    #[test]
    fn it_accepts_iso_4217_codes_and_knows_their_minor_units() {
        assert_eq!(eur().code(), "EUR");
        assert_eq!(eur().minor_unit_digits(), 2);
        assert_eq!(pyg().minor_unit_digits(), 0);
        assert_eq!(serde_json::to_string(&pyg()).unwrap(), "\"PYG\"");
    }

    #[test]
    fn it_refuses_codes_that_are_not_iso_4217() {
        for bad in ["", "eur", "EUD", "EURO", "€", "XXXX"] {
            assert_eq!(Currency::try_from(bad).unwrap_err().field, "currency");
        }
    }

    #[test]
    fn it_adds_amounts_of_one_currency() {
        let sum = Money::new(125_000, pyg()).checked_add(Money::new(5, pyg()));
        assert_eq!(sum, Ok(Money::new(125_005, pyg())));
    }

    #[test]
    fn it_refuses_to_add_two_currencies() {
        assert_eq!(
            Money::new(1, pyg()).checked_add(Money::new(1, eur())),
            Err(MoneyError::CurrencyMismatch(pyg(), eur()))
        );
    }

    #[test]
    fn it_reports_overflow_instead_of_wrapping() {
        let max = Money::new(i64::MAX, eur());
        assert_eq!(
            max.checked_add(Money::new(1, eur())),
            Err(MoneyError::Overflow)
        );
        let q = Quantity::try_from(2_i64).unwrap();
        assert_eq!(max.checked_mul(q), Err(MoneyError::Overflow));
        assert_eq!(
            Money::new(125_000, pyg()).checked_mul(q),
            Ok(Money::new(250_000, pyg()))
        );
    }
}
