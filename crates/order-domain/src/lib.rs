//! The shop's order model, free of I/O: it compiles and tests without a
//! database, a network or a clock (times come in with the commands).
//!
//! The idea the whole service rests on: a checkout's identity is the pair
//! (tenant, Idempotency-Key). [`OrderId::for_checkout`] turns that pair into
//! the order's stream id, so a retried checkout lands on the stream it created
//! the first time, and [`Order`] answers it as a replay instead of placing a
//! second order.
//!
//! # Layout
//!
//! Value types, each parsing its input (an invalid one cannot be built):
//! - `tenant_id.rs`: [`TenantId`], the shop, from the token.
//! - `idempotency_key.rs`: [`IdempotencyKey`], the client's name for a checkout.
//! - `customer_id.rs`, `sku.rs`, `quantity.rs`, `product_name.rs`,
//!   `order_note.rs`, `stock_delta.rs` ([`StockDelta`], [`StockReason`]).
//! - `money.rs`: [`Money`] (integer minor units) and [`Currency`] (ISO 4217).
//! - `order_id.rs`: [`OrderId`], [`StockAdjustmentId`], [`ProductId`]: stream ids.
//! - `order_number.rs`: [`OrderNumber`], what a customer quotes to support.
//! - `order_channel.rs`: [`OrderChannel`], where a checkout came from
//!   (recorded in `OrderPlaced` since its version 2).
//! - `checkout_fingerprint.rs`: [`CheckoutFingerprint`], tells a replay from a
//!   reused key.
//!
//! Aggregates (cqrs-es), each with its commands, events, errors, and its
//! given/when/then tests beside it:
//! - `order/`: [`Order`]: placed once, then paid, shipped or cancelled;
//!   `checkout.rs`: the checkout as the customer asked for it (lines that
//!   obey `checkout_rules.rs`, and the fingerprint a retry must match,
//!   computed once there and carried into `PlaceOrder`).
//! - `product/`: [`Product`]: a catalogue entry's name and price.
//! - `stock_adjustment/`: [`StockAdjustment`]: one keyed stock movement.
//!
//! Every aggregate exposes a pure `decide(&self, command)`; `handle` only
//! feeds its events to cqrs-es' sink, and `apply` only records them.

mod checkout_fingerprint;
mod customer_id;
mod idempotency_key;
mod invalid_value;
mod money;
mod order_channel;
mod order_id;
mod order_note;
mod order_number;
mod product_name;
mod quantity;
mod sku;
mod stock_delta;
mod tenant_id;

pub mod order;
pub mod product;
pub mod stock_adjustment;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod test_support;

pub use checkout_fingerprint::CheckoutFingerprint;
pub use customer_id::CustomerId;
pub use idempotency_key::IdempotencyKey;
pub use invalid_value::InvalidValue;
pub use money::{Currency, Money, MoneyError};
pub use order::{Order, OrderStatus};
pub use order_channel::OrderChannel;
pub use order_id::{OrderId, ProductId, StockAdjustmentId};
pub use order_note::OrderNote;
pub use order_number::OrderNumber;
pub use product::Product;
pub use product_name::ProductName;
pub use quantity::Quantity;
pub use sku::Sku;
pub use stock_adjustment::StockAdjustment;
pub use stock_delta::{StockDelta, StockReason};
pub use tenant_id::TenantId;
