//! The PostgreSQL side of store-orders: the event store, the read model it
//! keeps in the same transaction, the commands and queries the HTTP service
//! calls, and the projection rebuild.
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
//! - `event_repository.rs`: [`ProjectingEventRepository`], cqrs-es'
//!   `PersistedEventRepository`: postgres-es reads streams, `persist` appends
//!   and projects in one statement (`append_events`: the stock guard locks
//!   inventory rows in SKU order and refuses below zero, then the events go
//!   in, then the read model).
//! - `projection/`: events to row changes (pure), handed to the database's
//!   `project_read_model`; one implementation for the live path and the
//!   rebuild.
//! - `execute.rs`: load, decide, commit; on a concurrent append, run again.
//! - `order_commands.rs`: [`OrderCommands`]: checkout, pay, ship, cancel.
//! - `catalogue_commands.rs`: [`CatalogueCommands`]: products and stock moves.
//! - `order_queries.rs`, `catalogue_queries.rs`: the read model's queries.
//! - `shop_event.rs`: all streams' events, as the projections read them.
//! - `rebuild/`: commit-order replay into shadow tables, compare, swap.
//! - `sql/`: the queries, one file each (the write path's SQL is in the
//!   migrations, as functions).

mod catalogue_commands;
mod catalogue_queries;
mod command_context;
mod database_url;
mod error;
mod event_repository;
mod execute;
mod order_commands;
mod order_queries;
mod order_view;
mod shop_event;

pub mod projection;
pub mod rebuild;

pub use catalogue_commands::{CatalogueCommands, CatalogueError, StockMovement};
pub use catalogue_queries::{CataloguePrice, CatalogueQueries, ProductPage};
pub use command_context::{Actor, CommandContext};
pub use database_url::with_database;
pub use error::{StockRejection, StoreError};
pub use event_repository::{ProjectingEventRepository, TENANT_METADATA_KEY};
pub use order_commands::{
    Checkout, CheckoutError, CheckoutOutcome, OrderCommandError, OrderCommands, OrderTransition,
    PlacedOrder, RequestedLine,
};
pub use order_queries::{
    InvalidCursor, OrderCursor, OrderFilter, OrderPage, OrderQueries, OrderVisibility,
};
pub use order_view::{OrderLineView, OrderView, ProductView};
pub use shop_event::{DecodeError, RecordedEvent, ShopEvent};

/// The schema migrations, embedded: `MIGRATOR.run(&pool)` brings a database
/// to the schema this code expects.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
