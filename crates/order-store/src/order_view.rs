//! The store answers in the contract's own types (`order_api::Order`,
//! `order_api::Product`): a command's answer is built from the order's
//! events (`order_of`), a query's from the read model's rows
//! (`order_queries.rs`), and both give the same value (`tests/order_shape.rs`
//! fails when they do not). No intermediate copy of the order's shape.

use order_api::{Order, OrderLine};
use order_domain::order::OrderDetails;
use order_domain::OrderStatus;

/// The order as the events say it is.
pub(crate) fn order_of(order: &OrderDetails) -> Order {
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

/// The contract's name for a status.
pub fn status_of(status: OrderStatus) -> order_api::OrderStatus {
    match status {
        OrderStatus::Placed => order_api::OrderStatus::Placed,
        OrderStatus::Paid => order_api::OrderStatus::Paid,
        OrderStatus::Shipped => order_api::OrderStatus::Shipped,
        OrderStatus::Cancelled => order_api::OrderStatus::Cancelled,
    }
}
