//! The order: placed once per (tenant, Idempotency-Key), then paid, shipped or
//! cancelled; or, instead of ever being placed, its checkout abandoned.

mod abandonment;
mod aggregate;
mod checkout;
mod checkout_rules;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use abandonment::{AbandonCheckout, AbandonedBy, CheckoutAbandoned, SettledCheckout};
pub use aggregate::{Order, OrderDetails, OrderStatus};
pub use checkout::{Checkout, RequestedLine};
pub use checkout_rules::{check_lines, LineRuleBroken};
pub use commands::{CancelledBy, OrderCommand, PlaceOrder, PricedLine};
pub use errors::{OrderAction, OrderError};
pub use events::{OrderCancelled, OrderEvent, OrderExpired, OrderLine, OrderPlaced, StockLine};
