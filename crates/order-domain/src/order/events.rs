use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{CancelledBy, CheckoutAbandoned};
use crate::{
    CheckoutFingerprint, Currency, CustomerId, IdempotencyKey, OrderChannel, OrderId, OrderNote,
    OrderNumber, ProductName, Quantity, Sku, TenantId,
};

/// What happened to an order. Each event holds everything the read side needs,
/// so the projection never has to look anything up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderPlaced(OrderPlaced),
    OrderPaid {
        paid_at: DateTime<Utc>,
    },
    OrderShipped {
        shipped_at: DateTime<Utc>,
    },
    OrderCancelled(OrderCancelled),
    /// Left unpaid past the shop's deadline; its stock went back.
    OrderExpired(OrderExpired),
    /// The checkout's key was settled without an order: the first and only
    /// event of its stream (see `abandonment.rs`).
    CheckoutAbandoned(CheckoutAbandoned),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub order_number: OrderNumber,
    pub customer: CustomerId,
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    /// Sum of the line totals, in minor units of `currency`.
    pub total: i64,
    pub note: Option<OrderNote>,
    pub fingerprint: CheckoutFingerprint,
    pub placed_at: DateTime<Utc>,
    /// Where the checkout came from. Added in version 2 of `OrderPlaced`;
    /// version 1 events are upcast to [`OrderChannel::Unrecorded`] when read.
    pub channel: OrderChannel,
}

impl OrderPlaced {
    /// The version written today.
    pub const VERSION: &'static str = "2";
}

impl OrderEvent {
    /// The version of `event_type` this code writes and reads without
    /// upcasting.
    pub fn current_version(event_type: &str) -> &'static str {
        match event_type {
            "OrderPlaced" => OrderPlaced::VERSION,
            "CheckoutAbandoned" => CheckoutAbandoned::VERSION,
            _ => "1",
        }
    }
}

/// A line as sold: the name and unit price are those of the moment of sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: Sku,
    pub name: ProductName,
    pub quantity: Quantity,
    /// Minor units of the order's currency.
    pub unit_price: i64,
    /// `unit_price * quantity`, minor units.
    pub line_total: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub by: CancelledBy,
    pub cancelled_at: DateTime<Utc>,
    /// The stock this cancellation gives back, once, line by line.
    pub restocked: Vec<StockLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderExpired {
    pub expired_at: DateTime<Utc>,
    /// The stock this expiry gives back, once, line by line.
    pub restocked: Vec<StockLine>,
}

/// A quantity of one SKU going back on the shelf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::OrderPaid { .. } => "OrderPaid",
            Self::OrderShipped { .. } => "OrderShipped",
            Self::OrderCancelled(_) => "OrderCancelled",
            Self::OrderExpired(_) => "OrderExpired",
            Self::CheckoutAbandoned(_) => "CheckoutAbandoned",
        }
        .to_owned()
    }

    /// `OrderPlaced` is at version 2 (it gained `channel`); the others have
    /// not changed since their version 1. Every version ever written is listed in
    /// docs/EVENTS.md, and the store's decoder reads each of them.
    fn event_version(&self) -> String {
        Self::current_version(&self.event_type()).to_owned()
    }
}
