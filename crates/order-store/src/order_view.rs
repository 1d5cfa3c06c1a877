use chrono::{DateTime, Utc};
use order_domain::order::OrderDetails;
use order_domain::OrderStatus;
use uuid::Uuid;

/// An order as customers and staff see it. Built from the read model (GET)
/// or from the stream right after a command; both give the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderView {
    pub id: Uuid,
    pub order_number: String,
    pub status: OrderStatus,
    pub customer_id: String,
    pub idempotency_key: Option<String>,
    pub lines: Vec<OrderLineView>,
    pub currency: String,
    pub total: i64,
    pub note: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLineView {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

impl From<&OrderDetails> for OrderView {
    fn from(order: &OrderDetails) -> Self {
        Self {
            id: *order.id.as_uuid(),
            order_number: order.order_number.to_string(),
            status: order.status,
            customer_id: order.customer.to_string(),
            idempotency_key: Some(order.idempotency_key.to_string()),
            lines: order
                .lines
                .iter()
                .map(|l| OrderLineView {
                    sku: l.sku.to_string(),
                    name: l.name.to_string(),
                    quantity: i32::try_from(l.quantity.get()).unwrap_or(i32::MAX),
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
}

/// A product with its stock, as `inventory` holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub on_hand: i64,
    pub updated_at: DateTime<Utc>,
}
