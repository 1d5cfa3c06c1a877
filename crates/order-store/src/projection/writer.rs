use std::collections::BTreeSet;

use sqlx::PgConnection;

use super::changes::{OrderChange, ReadModelChanges};
use crate::error::StoreError;

/// Writes a fold of events into the read-model tables that `search_path`
/// resolves (the live ones, or a rebuild's shadow tables): at most five
/// statements, whatever the number of events.
pub async fn write_changes(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    if !changes.products.is_empty() {
        upsert_products(conn, changes).await?;
    }
    if !changes.stock.is_empty() {
        apply_stock_changes(conn, changes).await?;
    }
    if changes
        .orders
        .values()
        .any(|c| matches!(c, OrderChange::Insert(_)))
    {
        insert_orders(conn, changes).await?;
    }
    if changes
        .orders
        .values()
        .any(|c| matches!(c, OrderChange::Update(_)))
    {
        update_orders(conn, changes).await?;
    }
    if !changes.items.is_empty() {
        insert_items(conn, changes).await?;
    }
    Ok(())
}

async fn upsert_products(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    let n = changes.products.len();
    let (mut tenants, mut skus, mut names) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut prices, mut currencies, mut times) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for ((tenant, sku), row) in &changes.products {
        tenants.push(tenant.as_str());
        skus.push(sku.as_str());
        names.push(row.name.as_str());
        prices.push(row.unit_price);
        currencies.push(row.currency.as_str());
        times.push(row.defined_at);
    }
    sqlx::query(include_str!("../sql/upsert_products.sql"))
        .bind(tenants)
        .bind(skus)
        .bind(names)
        .bind(prices)
        .bind(currencies)
        .bind(times)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn apply_stock_changes(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    let n = changes.stock.len();
    let (mut tenants, mut skus) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut deltas, mut times) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for ((tenant, sku), change) in &changes.stock {
        tenants.push(tenant.as_str());
        skus.push(sku.as_str());
        deltas.push(change.delta);
        times.push(change.at);
    }
    let changed: Vec<(String, String)> =
        sqlx::query_as(include_str!("../sql/apply_stock_changes.sql"))
            .bind(&tenants)
            .bind(&skus)
            .bind(deltas)
            .bind(times)
            .fetch_all(&mut *conn)
            .await?;
    if changed.len() != n {
        let changed: BTreeSet<(&str, &str)> = changed
            .iter()
            .map(|(t, s)| (t.as_str(), s.as_str()))
            .collect();
        let missing = tenants
            .iter()
            .zip(&skus)
            .find(|(t, s)| !changed.contains(&(**t, **s)))
            .map(|(t, s)| format!("product {s} of tenant {t}"))
            .unwrap_or_else(|| "a product".to_owned());
        return Err(StoreError::ReadModelOutOfStep { what: missing });
    }
    Ok(())
}

async fn insert_orders(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    let rows: Vec<_> = changes
        .orders
        .values()
        .filter_map(|c| match c {
            OrderChange::Insert(row) => Some(row),
            OrderChange::Update(_) => None,
        })
        .collect();
    let result = sqlx::query(include_str!("../sql/insert_orders.sql"))
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.tenant_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.order_number.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.customer_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.currency.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.total).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.note.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.placed_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.last_event_sequence)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("store_orders_pkey") => {
            Err(StoreError::ReadModelOutOfStep {
                what: "an order whose row already exists (placed twice?)".to_owned(),
            })
        }
        Err(sqlx::Error::Database(db))
            if db.constraint() == Some("store_orders_number_per_tenant") =>
        {
            let number = rows
                .first()
                .map(|r| r.order_number.clone())
                .unwrap_or_default();
            Err(StoreError::OrderNumberTaken { number })
        }
        Err(e) => Err(e.into()),
    }
}

async fn update_orders(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    let updates: Vec<_> = changes
        .orders
        .iter()
        .filter_map(|(id, c)| match c {
            OrderChange::Update(u) => Some((id, u)),
            OrderChange::Insert(_) => None,
        })
        .collect();
    sqlx::query(include_str!("../sql/update_orders.sql"))
        .bind(updates.iter().map(|(id, _)| **id).collect::<Vec<_>>())
        .bind(
            updates
                .iter()
                .map(|(_, u)| u.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            updates
                .iter()
                .map(|(_, u)| u.updated_at)
                .collect::<Vec<_>>(),
        )
        .bind(updates.iter().map(|(_, u)| u.sequence).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_items(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    let items = &changes.items;
    sqlx::query(include_str!("../sql/insert_order_items.sql"))
        .bind(items.iter().map(|i| i.order_id).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.line_no).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.quantity).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.unit_price).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.line_total).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
