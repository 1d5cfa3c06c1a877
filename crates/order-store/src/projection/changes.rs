use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use order_domain::order::{CheckoutAbandoned, OrderEvent, OrderPlaced, StockLine};
use order_domain::product::{ProductDefinition, ProductEvent};
use order_domain::stock_adjustment::StockAdjustmentEvent;
use order_domain::{OrderStatus, Sku, TenantId};
use uuid::Uuid;

use super::rows::{
    AbandonmentSql, OrderItemSql, OrderSql, OrderUpdateSql, ProductSql, ProjectionArrays,
    StockChangeSql, StockGuardSql,
};
use crate::shop_event::{RecordedEvent, ShopEvent};

/// Why events could not be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error("order stream id {0:?} is not a UUID")]
    BadOrderId(String),
    #[error("stock of {sku} in {tenant} overflows")]
    StockOverflow { tenant: TenantId, sku: Sku },
}

/// The row changes that a run of events makes to the read model, tenant by
/// tenant (each tenant's are written with one call of `project_read_model`,
/// whose every statement is that tenant's).
///
/// Folding is order-sensitive only within a stream (events of one stream
/// arrive in sequence order); across streams every change commutes: stock is
/// a sum and `updated_at` a maximum. That is what lets the rebuild replay in
/// transaction order rather than in the exact commit order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReadModelChanges {
    tenants: BTreeMap<TenantId, TenantChanges>,
}

/// One tenant's row changes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantChanges {
    pub(crate) orders: BTreeMap<Uuid, OrderChange>,
    pub(crate) items: Vec<OrderItemSql>,
    pub(crate) products: BTreeMap<Sku, ProductSql>,
    pub(crate) stock: BTreeMap<Sku, StockChange>,
    /// Keys settled without an order (no `store_orders` row: not orders).
    pub(crate) abandonments: Vec<AbandonmentSql>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OrderChange {
    /// A new row (with any later status of the same batch already folded in).
    Insert(OrderSql),
    /// A status change of a row written by an earlier batch.
    Update(OrderUpdateSql),
}

/// The net change of one SKU's stock on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockChange {
    pub delta: i64,
    /// The latest time among the events behind the change.
    pub at: DateTime<Utc>,
}

impl ReadModelChanges {
    pub fn from_events<'a>(
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<Self, ProjectionError> {
        let mut changes = Self::default();
        for event in events {
            changes.apply(event)?;
        }
        Ok(changes)
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(TenantChanges::is_empty)
    }

    /// Each tenant's changes.
    pub fn tenants(&self) -> impl Iterator<Item = (&TenantId, &TenantChanges)> {
        self.tenants.iter()
    }

    /// One tenant's changes (none if the events were not that tenant's).
    pub fn of(&self, tenant: &TenantId) -> Option<&TenantChanges> {
        self.tenants.get(tenant)
    }

    pub fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        self.tenants
            .entry(recorded.tenant.clone())
            .or_default()
            .apply(recorded)
    }
}

impl TenantChanges {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
            && self.items.is_empty()
            && self.products.is_empty()
            && self.stock.is_empty()
            && self.abandonments.is_empty()
    }

    fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        match &recorded.event {
            ShopEvent::Order(event) => self.apply_order(recorded, event),
            ShopEvent::Product(
                ProductEvent::ProductDefined(definition)
                | ProductEvent::ProductRedefined(definition),
            ) => {
                self.define_product(definition);
                Ok(())
            }
            ShopEvent::StockAdjustment(StockAdjustmentEvent::StockAdjusted(adjusted)) => self
                .change_stock(
                    &adjusted.tenant,
                    &adjusted.sku,
                    adjusted.delta,
                    adjusted.adjusted_at,
                ),
        }
    }

    fn apply_order(
        &mut self,
        recorded: &RecordedEvent,
        event: &OrderEvent,
    ) -> Result<(), ProjectionError> {
        let id = Uuid::try_parse(&recorded.aggregate_id)
            .map_err(|_| ProjectionError::BadOrderId(recorded.aggregate_id.clone()))?;
        match event {
            OrderEvent::OrderPlaced(placed) => self.place(id, recorded.sequence, placed),
            OrderEvent::OrderPaid { paid_at } => {
                self.set_status(id, OrderStatus::Paid, *paid_at, recorded.sequence);
                Ok(())
            }
            OrderEvent::OrderShipped { shipped_at } => {
                self.set_status(id, OrderStatus::Shipped, *shipped_at, recorded.sequence);
                Ok(())
            }
            OrderEvent::CheckoutAbandoned(abandoned) => {
                self.abandon(id, abandoned);
                Ok(())
            }
            OrderEvent::OrderCancelled(cancelled) => self.end_unshipped(
                recorded,
                id,
                OrderStatus::Cancelled,
                cancelled.cancelled_at,
                &cancelled.restocked,
            ),
            OrderEvent::OrderExpired(expired) => self.end_unshipped(
                recorded,
                id,
                OrderStatus::Expired,
                expired.expired_at,
                &expired.restocked,
            ),
        }
    }

    fn place(
        &mut self,
        id: Uuid,
        sequence: i64,
        placed: &OrderPlaced,
    ) -> Result<(), ProjectionError> {
        self.orders.insert(
            id,
            OrderChange::Insert(OrderSql {
                id,
                tenant_id: placed.tenant.to_string(),
                order_number: placed.order_number.to_string(),
                customer_id: placed.customer.to_string(),
                idempotency_key: Some(placed.idempotency_key.to_string()),
                status: OrderStatus::Placed.as_str().to_owned(),
                currency: placed.currency.to_string(),
                total: placed.total,
                note: placed.note.as_ref().map(|n| n.to_string()),
                placed_at: placed.placed_at,
                updated_at: placed.placed_at,
                last_event_sequence: sequence,
                units: placed.lines.iter().map(|l| i64::from(l.quantity)).sum(),
            }),
        );
        for (index, line) in placed.lines.iter().enumerate() {
            self.items.push(OrderItemSql {
                order_id: id,
                // At most 100 lines: the index always fits.
                line_no: i32::try_from(index + 1).unwrap_or(i32::MAX),
                sku: line.sku.to_string(),
                name: line.name.to_string(),
                quantity: i32::try_from(line.quantity.get()).unwrap_or(i32::MAX),
                unit_price: line.unit_price,
                line_total: line.line_total,
            });
            self.change_stock(
                &placed.tenant,
                &line.sku,
                -i64::from(line.quantity),
                placed.placed_at,
            )?;
        }
        Ok(())
    }

    /// A cancellation or an expiry: the order's new status, and its stock
    /// back on the shelf.
    fn end_unshipped(
        &mut self,
        recorded: &RecordedEvent,
        id: Uuid,
        status: OrderStatus,
        at: DateTime<Utc>,
        restocked: &[StockLine],
    ) -> Result<(), ProjectionError> {
        self.set_status(id, status, at, recorded.sequence);
        for line in restocked {
            self.change_stock(&recorded.tenant, &line.sku, i64::from(line.quantity), at)?;
        }
        Ok(())
    }

    fn abandon(&mut self, id: Uuid, abandoned: &CheckoutAbandoned) {
        self.abandonments.push(AbandonmentSql {
            order_id: id,
            idempotency_key: abandoned.idempotency_key.to_string(),
            customer_id: abandoned.owner().map(|customer| customer.to_string()),
            abandoned_at: abandoned.abandoned_at,
        });
    }

    fn set_status(&mut self, id: Uuid, status: OrderStatus, at: DateTime<Utc>, sequence: i64) {
        let update = OrderUpdateSql {
            id,
            status: status.as_str().to_owned(),
            updated_at: at,
            sequence,
        };
        match self.orders.get_mut(&id) {
            Some(OrderChange::Insert(row)) if row.last_event_sequence < sequence => {
                row.status = update.status;
                row.updated_at = at;
                row.last_event_sequence = sequence;
            }
            Some(OrderChange::Update(earlier)) if earlier.sequence < sequence => *earlier = update,
            Some(_) => {}
            None => {
                self.orders.insert(id, OrderChange::Update(update));
            }
        }
    }

    fn define_product(&mut self, definition: &ProductDefinition) {
        self.products.insert(
            definition.sku.clone(),
            ProductSql {
                tenant_id: definition.tenant.to_string(),
                sku: definition.sku.to_string(),
                name: definition.name.to_string(),
                unit_price: definition.unit_price,
                currency: definition.currency.to_string(),
                defined_at: definition.defined_at,
            },
        );
    }

    fn change_stock(
        &mut self,
        tenant: &TenantId,
        sku: &Sku,
        delta: i64,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let change = self
            .stock
            .entry(sku.clone())
            .or_insert(StockChange { delta: 0, at });
        change.delta =
            change
                .delta
                .checked_add(delta)
                .ok_or_else(|| ProjectionError::StockOverflow {
                    tenant: tenant.clone(),
                    sku: sku.clone(),
                })?;
        change.at = change.at.max(at);
        Ok(())
    }
}

// The fold as the arrays `project_read_model` and the stock guard take.

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
            abandonments: changes.abandonments.clone(),
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
