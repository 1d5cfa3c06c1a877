//! The rows of a fold, as the PostgreSQL composite types of the projection
//! functions (migration `..._projection_functions.sql`) they are bound as,
//! in arrays (sqlx's derive also gives each its `_type` array type).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use order_domain::TenantId;

use super::changes::{OrderChange, TenantChanges};

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

/// The five arrays `project_read_model` takes with a tenant.
#[derive(Debug, Default)]
pub(crate) struct ProjectionArrays {
    pub products: Vec<ProductSql>,
    pub stock: Vec<StockChangeSql>,
    pub orders: Vec<OrderSql>,
    pub updates: Vec<OrderUpdateSql>,
    pub items: Vec<OrderItemSql>,
}

impl ProjectionArrays {
    pub(crate) fn of(tenant: &TenantId, changes: &TenantChanges) -> Self {
        let mut arrays = Self {
            products: changes.products.values().cloned().collect(),
            stock: changes
                .stock
                .iter()
                .map(|(sku, c)| StockChangeSql {
                    tenant_id: tenant.to_string(),
                    sku: sku.to_string(),
                    delta: c.delta,
                    changed_at: c.at,
                })
                .collect(),
            items: changes.items.clone(),
            ..Self::default()
        };
        for change in changes.orders.values() {
            match change {
                OrderChange::Insert(order) => arrays.orders.push(order.clone()),
                OrderChange::Update(update) => arrays.updates.push(update.clone()),
            }
        }
        arrays
    }
}

/// A row the stock guard locks: `delta` to check, or None (a definition).
#[derive(Debug, Clone, PartialEq, sqlx::Type)]
#[sqlx(type_name = "stock_guard_row")]
pub(crate) struct StockGuardSql {
    pub tenant_id: String,
    pub sku: String,
    pub delta: Option<i64>,
}

impl TenantChanges {
    /// The inventory rows the stock guard must lock: every stock change (to
    /// check) and every product definition (to lock only).
    pub(crate) fn stock_guard(&self, tenant: &TenantId) -> Vec<StockGuardSql> {
        let mut guard: Vec<StockGuardSql> = self
            .stock
            .iter()
            .map(|(sku, c)| StockGuardSql {
                tenant_id: tenant.to_string(),
                sku: sku.to_string(),
                delta: Some(c.delta),
            })
            .collect();
        for sku in self.products.keys() {
            if !self.stock.contains_key(sku) {
                guard.push(StockGuardSql {
                    tenant_id: tenant.to_string(),
                    sku: sku.to_string(),
                    delta: None,
                });
            }
        }
        guard
    }
}
