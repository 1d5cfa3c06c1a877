//! The PostgreSQL side of store-orders: the event store, the read model it
//! keeps in the same transaction, and the commands and queries the HTTP
//! service calls. (The rebuild of the read model from the events is the
//! `rebuild-projections` crate; it folds events through this crate's
//! `projection`.)
//!
//! The guarantee this crate exists for: a checkout retried with the same
//! (tenant, Idempotency-Key) never creates a second order nor takes stock
//! twice, even when the duplicates arrive at the same instant, because
//! 1. the order's stream id is derived from (tenant, key), and the store
//!    refuses a second first event for a stream (primary key) and a second
//!    stream for a (tenant, key) (unique index);
//! 2. the stock decrement and the order's read rows are written in the
//!    transaction that appends the events: all of it commits once, or none.
//!
//! # Layout
//!
//! - `../../migrations/`: the schema ([`MIGRATOR`]).
//! - `event_store.rs`: loading a stream (by tenant, kind and id) and
//!   appending to one with its projections in one round trip
//!   (`append_to_stream`, migration 5: look at the stream, lock the
//!   inventory rows in SKU order, look again, check prices and stock,
//!   insert the events, project them), with a typed answer: stored, the
//!   stream moved on (its newer events), a conflict, or a refusal; and the
//!   abandon of a checkout's key (`abandon_checkout`, migration 9: the
//!   stream's first event, within a per-customer bound).
//! - `group_commit.rs`: [`GroupCommit`]: appends go through a few writers;
//!   those that arrive while the writers are busy are stored together, one
//!   transaction per tenant's batch (`append_batch`, migration 14), each
//!   with its own answer.
//! - `execute.rs`: decide on the stream as known, append, and when it moved
//!   on, fold what came back and decide again.
//! - `stream_kind.rs`: what the store needs of each aggregate (Order,
//!   Product, StockAdjustment) beyond cqrs-es' `Aggregate`.
//! - `postgres_es_reader.rs`: another cqrs-es application's way in:
//!   postgres-es' repository over our `events` table, with our upcasters
//!   (reads only; why our writes do not go through it is written there).
//! - `order_commands.rs`: [`OrderCommands`]: checkout, settling a
//!   checkout's key (abandon), pay, ship, cancel, expire.
//!   `price_cache.rs` and `known_orders.rs` save a checkout its own round
//!   trips (a price lookup, a wasted append for a retry); neither is trusted.
//!   `unpaid_limit.rs`: [`UnpaidLimit`], the bounds on what a customer's
//!   unpaid orders hold; `unpaid_expiry.rs`: the sweeper that expires
//!   orders left unpaid ([`run_unpaid_expiry`], every replica runs one).
//! - `catalogue_commands.rs`: [`CatalogueCommands`]: products and stock moves.
//! - `projection/`: events to row changes (pure), handed to the database's
//!   `project_read_model`; one implementation for the live path and the
//!   rebuild (`rebuild-projections`).
//! - `order_queries.rs`, `catalogue_queries.rs`: the read model's queries.
//! - `distribution.rs`: [`distribute`]: the schema over a Citus cluster
//!   (tables with `tenant_id` colocated with `events`, functions taking
//!   `p_tenant` delegated), from the catalogue, idempotent.
//! - `commit_order.rs`: where events are for a reader in commit order: one
//!   node, or on a cluster one commit order per birth node (its position
//!   range and its xmin); the relay and the rebuild read by it.
//! - `store_health.rs`: [`StoreProbe`]: does the database answer, are the
//!   migrations applied, how far are commit-order readers held back
//!   (`/readyz`, `/metrics`).
//! - `shop_event.rs`: all streams' events, as the projections read them,
//!   and the one decoder of stored events (every version);
//!   `event_upcasters.rs` brings old versions up to today's.
//! - `order_view.rs`: the answers are the contract's own types
//!   (`order_api::Order`, `order_api::Product`); an order from its events
//!   and from its rows compare equal (`tests/order_shape.rs`).
//! - `sql/`: the queries, one whole statement per file, run with sqlx's
//!   `query_file_as!` so the columns they name and read are checked against
//!   the migrated schema at compile time (`.sqlx/` at the workspace root,
//!   `scripts/sqlx-prepare`). The write path's SQL is in the migrations, as
//!   functions, called with runtime-bound composite arrays, which sqlx's
//!   macros cannot type.

mod catalogue_commands;
mod catalogue_queries;
mod command_context;
pub mod commit_order;
mod database_url;
mod distribution;
mod error;
mod event_store;
pub mod event_upcasters;
mod execute;
mod group_commit;
mod known_orders;
mod order_commands;
mod order_queries;
mod order_view;
mod postgres_es_reader;
mod price_cache;
mod shop_event;
mod store_health;
mod stream_kind;
mod unpaid_expiry;
mod unpaid_limit;

pub mod projection;

pub use catalogue_commands::{CatalogueCommands, CatalogueError, StockMovement};
pub use catalogue_queries::{CataloguePrice, CatalogueQueries, ProductPage};
pub use command_context::{Actor, CommandContext, TENANT_METADATA_KEY};
pub use database_url::with_database;
pub use distribution::{distribute, DistributeError, Distribution};
pub use error::{StockRejection, StoreError};
pub use event_store::load_stream;
pub use group_commit::{GroupCommit, GroupCommitSettings};
pub use order_commands::{
    AbandonError, AbandonmentLimit, CheckoutError, CheckoutOutcome, OrderCommandError,
    OrderCommands, OrderTransition, PlacedOrder, Settlement,
};
pub use order_queries::{
    InvalidCursor, OrderCursor, OrderFilter, OrderPage, OrderQueries, OrderVisibility,
};
pub use order_view::{order_of, status_of};
pub use postgres_es_reader::postgres_es_event_store;
pub use shop_event::{DecodeError, RecordedEvent, ShopEvent};
pub use store_health::{
    up_migrations, CommitOrderHoldBack, NodeHoldBack, StoreHealth, StoreProbe, HEALTH_REUSED_FOR,
};
pub use stream_kind::StreamKind;
pub use unpaid_expiry::{expire_unpaid_orders, run_unpaid_expiry, Sweep, UnpaidExpiry};
pub use unpaid_limit::{UnpaidBound, UnpaidLimit, UnpaidRefusal};

/// The schema migrations, embedded: `MIGRATOR.run(&pool)` brings a database
/// to the schema this code expects.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Brings the database to this code's schema and says how many migrations
/// it applied: 0 when another process (a replica starting at the same
/// moment) already had. Replicas may all call it at once: one applies, the
/// others wait and find nothing to do (sqlx's own lock serializes the runs;
/// ours, around it, makes the count exact).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<usize, sqlx::Error> {
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('store-orders migrate', 0))")
        .execute(&mut *lock)
        .await?;
    let outcome = async {
        let before = applied_migrations(pool).await?;
        MIGRATOR.run(pool).await?;
        Ok::<usize, sqlx::Error>(applied_migrations(pool).await?.saturating_sub(before))
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended('store-orders migrate', 0))")
        .execute(&mut *lock)
        .await?;
    outcome
}

async fn applied_migrations(pool: &sqlx::PgPool) -> Result<usize, sqlx::Error> {
    let missing = StoreProbe::new(pool.clone()).missing_migrations().await?;
    Ok(up_migrations().saturating_sub(missing.len()))
}
