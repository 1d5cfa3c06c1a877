//! The rows of a fold, as the PostgreSQL composite types of the projection
//! functions (migration `..._projection_functions.sql`) they are bound as,
//! in arrays (sqlx's derive also gives each its `_type` array type).

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_product")]
pub(crate) struct ProductSql {
    pub tenant_id: String,
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub defined_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_stock_change")]
pub(crate) struct StockChangeSql {
    pub tenant_id: String,
    pub sku: String,
    pub delta: i64,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_order")]
pub(crate) struct OrderSql {
    pub id: Uuid,
    pub tenant_id: String,
    pub order_number: String,
    pub customer_id: String,
    pub idempotency_key: Option<String>,
    pub status: String,
    pub currency: String,
    pub total: i64,
    pub note: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_event_sequence: i64,
    /// The units of all its lines: what it holds while unpaid.
    pub units: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_order_update")]
pub(crate) struct OrderUpdateSql {
    pub id: Uuid,
    pub status: String,
    pub updated_at: DateTime<Utc>,
    pub sequence: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_order_item")]
pub(crate) struct OrderItemSql {
    pub order_id: Uuid,
    pub line_no: i32,
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "read_model_abandonment")]
pub(crate) struct AbandonmentSql {
    pub order_id: Uuid,
    pub idempotency_key: String,
    /// None: staff abandoned it.
    pub customer_id: Option<String>,
    pub abandoned_at: DateTime<Utc>,
}

/// The six arrays `project_read_model` takes with a tenant.
#[derive(Debug, Default)]
pub(crate) struct ProjectionArrays {
    pub products: Vec<ProductSql>,
    pub stock: Vec<StockChangeSql>,
    pub orders: Vec<OrderSql>,
    pub updates: Vec<OrderUpdateSql>,
    pub items: Vec<OrderItemSql>,
    pub abandonments: Vec<AbandonmentSql>,
}

/// A row the stock guard locks: `delta` to check, or None (a definition).
#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "stock_guard_row")]
pub(crate) struct StockGuardSql {
    pub tenant_id: String,
    pub sku: String,
    pub delta: Option<i64>,
}
