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
    /// The statements it ran, as docs/SCALE-OUT.md prints them (values
    /// written in; the database's name as `<this database>`), so that the
    /// documentation can be checked against what the command does.
    pub statements: Vec<String>,
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
    distribution.statements.extend([
        "SET citus.enable_unsafe_triggers TO on;".to_owned(),
        "ALTER DATABASE <this database> SET citus.enable_unsafe_triggers TO on;".to_owned(),
    ]);
    let tables = sqlx::query_file!("src/sql/tenant_tables.sql")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|t| (t.name, t.references))
        .collect();
    let tables = in_distribution_order(tables);
    let lock_order = in_lock_order(&tables);
    for table in tables {
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
        let statements = distribute_table(conn, &table, colocate_with, &lock_order).await?;
        distribution.statements.extend(statements);
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
        distribution.statements.push(format!(
            "SELECT create_distributed_function('{function}'::regprocedure, \
             distribution_arg_name := 'p_tenant', colocate_with := 'events');"
        ));
        distribution.functions.push(function);
    }
    Ok(distribution)
}

/// The tables of tenant data in the order the write path locks them:
/// stock rows first (a checkout locks its inventory rows before it appends),
/// then `events`, then the read model.
fn in_lock_order(tables: &[String]) -> Vec<String> {
    let mut ordered: Vec<String> = ["inventory", "events"]
        .into_iter()
        .filter(|t| tables.iter().any(|x| x == t))
        .map(str::to_owned)
        .collect();
    let rest: Vec<String> = tables
        .iter()
        .filter(|t| !ordered.contains(t))
        .cloned()
        .collect();
    ordered.extend(rest);
    ordered
}

/// Distributes one table, in a transaction of its own that first takes
/// every table of tenant data in the write path's lock order (EXCLUSIVE:
/// reads go on, writes wait): under live checkouts (moving a running store
/// onto a cluster), distributing `inventory` alone deadlocks with a
/// checkout that holds `events` and waits for `inventory`. Writes wait
/// anyway while Citus copies a table to its shards. Should PostgreSQL still
/// cancel us for a deadlock, we try again. Answers the statements it ran
/// (the last attempt's), as the documentation prints them.
async fn distribute_table(
    conn: &mut PgConnection,
    table: &str,
    colocate_with: &str,
    lock_order: &[String],
) -> Result<Vec<String>, DistributeError> {
    const ATTEMPTS: u32 = 20;
    let tables: Vec<String> = lock_order.iter().map(|t| quoted(t)).collect();
    let lock = format!("LOCK TABLE {} IN EXCLUSIVE MODE", tables.join(", "));
    let mut attempt = 1;
    loop {
        let mut tx = conn.begin().await?;
        let locked = sqlx::query(&lock).execute(&mut *tx).await;
        let done = match locked {
            Ok(_) => sqlx::query(
                "SELECT create_distributed_table($1::regclass, 'tenant_id', colocate_with => $2)",
            )
            .bind(table)
            .bind(colocate_with)
            .execute(&mut *tx)
            .await,
            Err(e) => Err(e),
        };
        match done {
            Ok(_) => {
                tx.commit().await?;
                return Ok(vec![
                    "BEGIN;".to_owned(),
                    format!("{lock};"),
                    format!(
                        "SELECT create_distributed_table('{table}', 'tenant_id', colocate_with => '{colocate_with}');"
                    ),
                    "COMMIT;".to_owned(),
                ]);
            }
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && attempt < ATTEMPTS =>
            {
                tx.rollback().await?;
                tracing::info!(
                    table,
                    attempt,
                    "a checkout deadlocked with the distribution of this table; trying again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `name` as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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

    #[test]
    fn it_locks_stock_then_events_then_the_rest_as_the_write_path_does() {
        let tables: Vec<String> = ["events", "gift_cards", "inventory", "store_orders"]
            .map(String::from)
            .into();
        assert_eq!(
            in_lock_order(&tables),
            ["inventory", "events", "gift_cards", "store_orders"]
        );
        assert_eq!(quoted(r#"odd"name"#), r#""odd""name""#);
    }
}
