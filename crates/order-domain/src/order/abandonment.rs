//! Settling a checkout whose answer never came: abandoning its key.
//!
//! Why it is part of the order and not a stream of its own: a client whose
//! checkout got no answer must learn the outcome for certain before it lets
//! the person change the cart or makes a new key. "Abandoned" is only a
//! certainty if no order can ever appear under the key afterwards, even
//! from a request still in flight. So the abandonment is the *first event
//! of the very stream* an order with that key would have (same aggregate,
//! same id, the key recorded): the event store takes one first event per
//! stream and one stream per (tenant, key), so between `CheckoutAbandoned`
//! and `OrderPlaced` exactly one is ever stored. A separate kind of stream
//! would let both happen.
//!
//! Ownership follows the first event: a key a customer abandoned is theirs
//! (another customer's checkout with it is a reused key, and they cannot see
//! it); a key staff abandoned belongs to nobody, and every customer's
//! checkout with it is answered "abandoned".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{OrderDetails, OrderEvent};
use crate::{CustomerId, IdempotencyKey, OrderId, TenantId};

/// Who abandoned a checkout: the customer whose key it is, or staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonedBy {
    Customer(CustomerId),
    Staff,
}

/// Settles a key for good: records that no order will be placed with it,
/// unless one already was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbandonCheckout {
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub by: AbandonedBy,
    pub at: DateTime<Utc>,
}

/// No order was placed with this key, and none ever will be: the first (and
/// only) event of the stream the order would have had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutAbandoned {
    /// The id the order would have had ([`OrderId::for_checkout`]).
    pub order_id: OrderId,
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub by: AbandonedBy,
    pub abandoned_at: DateTime<Utc>,
}

impl CheckoutAbandoned {
    /// The version written today.
    pub const VERSION: &'static str = "1";

    /// The customer the key belongs to (None: staff abandoned it, and it
    /// belongs to nobody).
    pub fn owner(&self) -> Option<&CustomerId> {
        match &self.by {
            AbandonedBy::Customer(customer) => Some(customer),
            AbandonedBy::Staff => None,
        }
    }

    /// Whether `customer` may see this abandonment: their own, or one staff
    /// made (which answers every customer's checkout with the key anyway).
    pub fn is_visible_to(&self, customer: &CustomerId) -> bool {
        self.owner().is_none_or(|owner| owner == customer)
    }
}

impl From<CheckoutAbandoned> for OrderEvent {
    fn from(abandoned: CheckoutAbandoned) -> Self {
        Self::CheckoutAbandoned(abandoned)
    }
}

/// What became of a checkout's key: its order, or its abandonment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SettledCheckout<'a> {
    Placed(&'a OrderDetails),
    Abandoned(&'a CheckoutAbandoned),
}
