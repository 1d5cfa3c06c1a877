//! The store answers in the contract's own types (`order_api::Order`,
//! `order_api::Product`): a command's answer is built from the order's
//! events (`order_of`), a query's from the read model's rows
//! (`order_queries.rs`), and both give the same value (`tests/order_shape.rs`
//! fails when they do not). No intermediate copy of the order's shape.

use order_api::{CheckoutState, CheckoutStatus, Order, OrderLine};
use order_domain::order::{OrderDetails, SettledCheckout};
use order_domain::{IdempotencyKey, OrderStatus};

/// The order as the events say it is.
pub fn order_of(order: &OrderDetails) -> Order {
    Order {
        id: *order.id.as_uuid(),
        order_number: order.order_number.to_string(),
        status: status_of(order.status),
        customer_id: order.customer.to_string(),
        idempotency_key: Some(order.idempotency_key.to_string()),
        lines: order
            .lines
            .iter()
            .map(|l| OrderLine {
                sku: l.sku.to_string(),
                name: l.name.to_string(),
                quantity: i64::from(l.quantity.get()),
                unit_price: l.unit_price,
                line_total: l.line_total,
            })
            .collect(),
        currency: order.currency.to_string(),
        total: order.total,
        note: order.note.as_ref().map(|n| n.to_string()),
        placed_at: order.placed_at,
        updated_at: order.updated_at,
    }
}

/// What became of `key`, as its stream says (None: nothing yet).
pub(crate) fn checkout_status_of(
    key: &IdempotencyKey,
    order: &order_domain::Order,
) -> Option<CheckoutStatus> {
    Some(match order.settled()? {
        SettledCheckout::Placed(details) => placed_checkout(key, order_of(details)),
        SettledCheckout::Abandoned(abandoned) => abandoned_checkout(key, abandoned.abandoned_at),
    })
}

pub(crate) fn placed_checkout(key: &IdempotencyKey, order: Order) -> CheckoutStatus {
    CheckoutStatus {
        idempotency_key: key.to_string(),
        state: CheckoutState::Placed,
        order: Some(order),
        abandoned_at: None,
    }
}

pub(crate) fn abandoned_checkout(
    key: &IdempotencyKey,
    abandoned_at: chrono::DateTime<chrono::Utc>,
) -> CheckoutStatus {
    CheckoutStatus {
        idempotency_key: key.to_string(),
        state: CheckoutState::Abandoned,
        order: None,
        abandoned_at: Some(abandoned_at),
    }
}

/// The contract's name for a status.
pub fn status_of(status: OrderStatus) -> order_api::OrderStatus {
    match status {
        OrderStatus::Placed => order_api::OrderStatus::Placed,
        OrderStatus::Paid => order_api::OrderStatus::Paid,
        OrderStatus::Shipped => order_api::OrderStatus::Shipped,
        OrderStatus::Cancelled => order_api::OrderStatus::Cancelled,
        OrderStatus::Expired => order_api::OrderStatus::Expired,
    }
}
