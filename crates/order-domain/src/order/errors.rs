use serde::{Deserialize, Serialize};

use super::OrderStatus;
use crate::{Currency, MoneyError, Sku};

/// A transition asked of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderAction {
    Pay,
    Ship,
    Cancel,
}

impl std::fmt::Display for OrderAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pay => "pay",
            Self::Ship => "ship",
            Self::Cancel => "cancel",
        })
    }
}

/// Why an order refused a command. Each message says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("no such order")]
    OrderNotFound,
    #[error(
        "this Idempotency-Key was already used for a different checkout (other customer, lines or note); send a new key for a new checkout"
    )]
    IdempotencyKeyReused,
    #[error(
        "this Idempotency-Key's checkout was abandoned: nothing was ordered with it and nothing ever will be; start a new checkout with a new key"
    )]
    CheckoutAbandoned,
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order may have at most {max} lines; got {count}")]
    TooManyLines { count: usize, max: usize },
    #[error("SKU {sku} is not in this shop's catalogue")]
    UnknownSku { sku: Sku },
    #[error("SKU {sku} appears on more than one line; put the whole quantity on one line")]
    DuplicateSku { sku: Sku },
    #[error(
        "SKU {sku} is priced in {found}, but this order is in {expected}; order it separately"
    )]
    CurrencyMismatch {
        sku: Sku,
        expected: Currency,
        found: Currency,
    },
    #[error("a unit price may not be negative (SKU {sku})")]
    NegativePrice { sku: Sku },
    #[error("the order total is too large to represent")]
    AmountOverflow,
    #[error("cannot {action} an order that is {from}")]
    InvalidTransition {
        from: OrderStatus,
        action: OrderAction,
    },
    #[error("no such order")]
    NotYourOrder,
}

impl From<MoneyError> for OrderError {
    fn from(_: MoneyError) -> Self {
        // Currencies are checked line by line before any sum is taken, so the
        // only arithmetic failure left is an overflow.
        Self::AmountOverflow
    }
}
