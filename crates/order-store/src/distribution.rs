//! Distributing the schema over a Citus cluster (`order-service
//! distribute`), after the migrations, idempotently.
//!
//! What it does is what docs/SCALE-OUT.md shows, derived from the
//! catalogue so that tables and functions added by later migrations are
//! covered without a change here:
//! 1. `citus.enable_unsafe_triggers` on, for this session and, with `ALTER
//!    DATABASE`, for every later one (later migrations' DDL). Citus refuses
//!    to distribute a table with triggers unless told to: `events` has the
//!    append-only guard (migration 1), which only raises an error and
//!    touches no other table, so none of the visibility or deadlock hazards
//!    the setting warns about apply; and it keeps history append-only for
//!    everyone, the owner and the rebuild included, not only the service's
//!    role.
//! 2. Every table with a `tenant_id` column, distributed by it: `events`
//!    first, every other colocated with it, so one tenant's events, orders,
//!    lines, stock and abandonments live on one node.
//! 3. Every function that takes `p_tenant`, delegated by it: a call runs on
//!    the node that holds the tenant, as one local transaction.
//!
//! Citus's own catalogue (`pg_dist_partition`, `pg_dist_object`) exists
//! only on a cluster, so those queries are bound at run time; the rest are
//! checked at compile time like every other statement.

use sqlx::{Acquire, PgConnection};

use crate::error::StoreError;

/// Why the schema could not be distributed.
#[derive(Debug, thiserror::Error)]
pub enum DistributeError {
    #[error(
        "the citus extension is not installed in this database: this command distributes the schema over a Citus cluster; run it against the coordinator after `CREATE EXTENSION citus` (a single PostgreSQL needs nothing of it)"
    )]
    NoCitus,
    #[error("the schema is not migrated (missing: {0}); run `order-service migrate` first")]
    NotMigrated(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DistributeError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// What the command found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distribution {
    /// Tables distributed now.
    pub distributed: Vec<String>,
    /// Tables that already were.
    pub already: Vec<String>,
    /// Functions delegated by their `p_tenant` argument (every call: the
    /// command is idempotent, Citus updates the same metadata).
    pub functions: Vec<String>,
}

/// `events` first (every other table is colocated with it), then every
/// table after the tables its foreign keys reference.
fn in_distribution_order(mut tables: Vec<(String, Vec<String>)>) -> Vec<String> {
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    if let Some(at) = tables.iter().position(|(name, _)| name == "events") {
        ordered.push(tables.remove(at).0);
    }
    while !tables.is_empty() {
        let ready = tables
            .iter()
            .position(|(_, references)| references.iter().all(|r| ordered.contains(r)))
            // A reference outside the tables of tenant data: Citus will say.
            .unwrap_or(0);
        ordered.push(tables.remove(ready).0);
    }
    ordered
}

/// Distributes the schema `conn` is in (see the module's documentation).
pub async fn distribute(conn: &mut PgConnection) -> Result<Distribution, DistributeError> {
    let citus: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
            .fetch_optional(&mut *conn)
            .await?;
    if citus.is_none() {
        return Err(DistributeError::NoCitus);
    }
    let missing = crate::store_health::missing_migrations_on(&mut *conn).await?;
    if !missing.is_empty() {
        return Err(DistributeError::NotMigrated(missing.join(", ")));
    }
    sqlx::query("SET citus.enable_unsafe_triggers TO on")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DO $$ BEGIN \
           EXECUTE format('ALTER DATABASE %I SET citus.enable_unsafe_triggers TO on', \
                          current_database()); \
         END $$",
    )
    .execute(&mut *conn)
    .await?;
    let mut distribution = Distribution::default();
    let tables = sqlx::query_file!("src/sql/tenant_tables.sql")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|t| (t.name, t.references))
        .collect();
    for table in in_distribution_order(tables) {
        let done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::regclass)",
        )
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
        if done {
            distribution.already.push(table);
            continue;
        }
        let colocate_with = if table == "events" {
            "default"
        } else {
            "events"
        };
        let mut tx = conn.begin().await?;
        sqlx::query(
            "SELECT create_distributed_table($1::regclass, 'tenant_id', colocate_with => $2)",
        )
        .bind(&table)
        .bind(colocate_with)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        distribution.distributed.push(table);
    }
    let functions = sqlx::query_file_scalar!("src/sql/tenant_functions.sql")
        .fetch_all(&mut *conn)
        .await?;
    for function in functions {
        sqlx::query(
            "SELECT create_distributed_function($1::regprocedure, distribution_arg_name := 'p_tenant', \
             colocate_with := 'events')",
        )
        .bind(&function)
        .execute(&mut *conn)
        .await?;
        distribution.functions.push(function);
    }
    Ok(distribution)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_distributes_events_first_and_referenced_tables_before_their_referrers() {
        let table = |name: &str, references: &[&str]| {
            (
                name.to_owned(),
                references.iter().map(|r| (*r).to_owned()).collect(),
            )
        };
        let order = in_distribution_order(vec![
            table("inventory", &[]),
            table("store_order_items", &["store_orders"]),
            table("events", &[]),
            table("store_orders", &[]),
        ]);
        assert_eq!(
            order,
            ["events", "inventory", "store_orders", "store_order_items"]
        );
    }
}
