use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AbandonCheckout;
use crate::{
    CheckoutFingerprint, Currency, CustomerId, IdempotencyKey, Money, OrderChannel, OrderNote,
    ProductName, Quantity, Sku, TenantId,
};

/// What can be asked of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderCommand {
    PlaceOrder(PlaceOrder),
    /// Settles a checkout's key without an order (see `abandonment.rs`).
    AbandonCheckout(AbandonCheckout),
    MarkPaid {
        at: DateTime<Utc>,
    },
    Ship {
        at: DateTime<Utc>,
    },
    Cancel {
        by: CancelledBy,
        at: DateTime<Utc>,
    },
    /// Expires the order if it is still unpaid and was placed before
    /// `placed_before` (the sweeper's deadline: now minus the time an
    /// order may stay unpaid).
    Expire {
        placed_before: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

/// A checkout, after the server priced its lines from the catalogue. Built
/// by [`Checkout::priced`](super::Checkout::priced), which carries the
/// fingerprint computed when the request was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub customer: CustomerId,
    pub lines: Vec<PricedLine>,
    /// The order's currency; every line must be priced in it.
    pub currency: Currency,
    pub note: Option<OrderNote>,
    /// The fingerprint of the request as the customer sent it (see
    /// [`CheckoutFingerprint`]); a retry must match it.
    pub fingerprint: CheckoutFingerprint,
    pub placed_at: DateTime<Utc>,
    /// Where the checkout came from. Not part of the fingerprint: a retry
    /// of a checkout from another channel is the same checkout.
    pub channel: OrderChannel,
}

/// One line of a checkout with the catalogue's name and price at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricedLine {
    pub sku: Sku,
    pub name: ProductName,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// Who cancels: the customer may cancel only their own order, and only
/// before it is paid; staff may cancel any placed or paid order of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Customer(CustomerId),
    Staff,
}
