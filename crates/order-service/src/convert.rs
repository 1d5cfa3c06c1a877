//! Store views to API types.

use order_store::{OrderView, ProductView};

pub fn order(view: OrderView) -> order_api::Order {
    order_api::Order {
        id: view.id,
        order_number: view.order_number,
        status: status(view.status),
        customer_id: view.customer_id,
        idempotency_key: view.idempotency_key,
        lines: view
            .lines
            .into_iter()
            .map(|l| order_api::OrderLine {
                sku: l.sku,
                name: l.name,
                quantity: i64::from(l.quantity),
                unit_price: l.unit_price,
                line_total: l.line_total,
            })
            .collect(),
        currency: view.currency,
        total: view.total,
        note: view.note,
        placed_at: view.placed_at,
        updated_at: view.updated_at,
    }
}

pub fn status(status: order_domain::OrderStatus) -> order_api::OrderStatus {
    use order_domain::OrderStatus as S;
    match status {
        S::Placed => order_api::OrderStatus::Placed,
        S::Paid => order_api::OrderStatus::Paid,
        S::Shipped => order_api::OrderStatus::Shipped,
        S::Cancelled => order_api::OrderStatus::Cancelled,
    }
}

pub fn product(view: ProductView) -> order_api::Product {
    order_api::Product {
        sku: view.sku,
        name: view.name,
        unit_price: view.unit_price,
        currency: view.currency,
        on_hand: view.on_hand,
        updated_at: view.updated_at,
    }
}
