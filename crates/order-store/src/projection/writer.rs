use sqlx::PgConnection;

use super::changes::ReadModelChanges;
use super::rows::ProjectionArrays;
use crate::error::{constraint_of, sqlstate, StoreError};

/// Writes a fold of events into the read-model tables that `search_path`
/// resolves (the live ones, or a rebuild's shadow tables), with one call of
/// the `project_read_model` function per tenant, whatever the number of
/// events.
pub async fn write_changes(
    conn: &mut PgConnection,
    changes: &ReadModelChanges,
) -> Result<(), StoreError> {
    for (tenant, changes) in changes.tenants() {
        if changes.is_empty() {
            continue;
        }
        let arrays = ProjectionArrays::of(tenant, changes);
        sqlx::query("SELECT project_read_model($1, $2, $3, $4, $5, $6, $7)")
            .bind(tenant.as_str())
            .bind(arrays.products)
            .bind(arrays.stock)
            .bind(arrays.orders)
            .bind(arrays.updates)
            .bind(arrays.items)
            .bind(arrays.abandonments)
            .execute(&mut *conn)
            .await
            .map_err(projection_error)?;
    }
    Ok(())
}

/// The projection's own failures, named; anything else as it is.
pub(crate) fn projection_error(err: sqlx::Error) -> StoreError {
    let constraint = constraint_of(&err).map(str::to_owned);
    match (sqlstate(&err).as_deref(), constraint.as_deref()) {
        (Some("RM001"), _) => StoreError::ReadModelOutOfStep {
            what: "a stock change without its inventory row".to_owned(),
        },
        (_, Some("store_orders_pkey")) => StoreError::ReadModelOutOfStep {
            what: "an order whose row already exists (placed twice?)".to_owned(),
        },
        (_, Some("store_checkout_abandonments_pkey")) => StoreError::ReadModelOutOfStep {
            what: "an abandoned checkout whose row already exists (abandoned twice?)".to_owned(),
        },
        (_, Some("store_orders_number_per_tenant")) => StoreError::OrderNumberTaken {
            number: match &err {
                sqlx::Error::Database(db) => db.message().to_owned(),
                _ => String::new(),
            },
        },
        _ => err.into(),
    }
}
