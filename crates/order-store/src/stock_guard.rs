//! The inventory row as the stock guard.

use std::collections::BTreeMap;

use order_domain::{Sku, TenantId};
use sqlx::PgConnection;

use crate::error::{StockRejection, StoreError};
use crate::projection::ReadModelChanges;

/// Locks every inventory row the changes touch (per tenant, in SKU order)
/// and refuses a stock change whose row is missing or would go below zero.
///
/// Runs first in the append transaction, before the events are inserted: a
/// refused change stores nothing; transactions touching the same row queue on
/// its lock; and every transaction that will write `inventory` locks it
/// before it locks `events`, the order the rebuild's cut-over locks them in.
pub(crate) async fn lock_and_check_stock(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<Result<(), StockRejection>, StoreError> {
    // Per tenant, per SKU: the stock change to check, or None for a product
    // definition (its row may not exist yet; it is locked all the same).
    let mut touched: BTreeMap<&TenantId, BTreeMap<&Sku, Option<i64>>> = BTreeMap::new();
    for ((tenant, sku), change) in changes.stock_changes() {
        touched
            .entry(tenant)
            .or_default()
            .insert(sku, Some(change.delta));
    }
    for (tenant, sku) in changes.defined_products() {
        touched
            .entry(tenant)
            .or_default()
            .entry(sku)
            .or_insert(None);
    }
    for (tenant, skus) in touched {
        let names: Vec<&str> = skus.keys().map(|sku| sku.as_str()).collect();
        let on_hand: BTreeMap<String, i64> =
            sqlx::query_as::<_, (String, i64)>(include_str!("sql/lock_inventory.sql"))
                .bind(tenant.as_str())
                .bind(&names)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        for (sku, delta) in skus {
            let Some(delta) = delta else { continue };
            let Some(&available) = on_hand.get(sku.as_str()) else {
                return Ok(Err(StockRejection::UnknownSku { sku: sku.clone() }));
            };
            if available.saturating_add(delta) < 0 {
                return Ok(Err(StockRejection::InsufficientStock {
                    sku: sku.clone(),
                    requested: delta.saturating_neg(),
                    available,
                }));
            }
        }
    }
    Ok(Ok(()))
}
