//! The read model's projection: one implementation for the live write path
//! and the rebuild.
//!
//! [`ReadModelChanges`] folds events into row changes (pure, no I/O);
//! [`write_changes`] writes a fold with a handful of set-based statements.
//! The live path folds the events of one command and writes them in the
//! transaction that appends them; the rebuild folds thousands of events per
//! batch and writes them into shadow tables. The SQL names tables without a
//! schema, so `search_path` decides which tables it writes.

mod changes;
mod writer;

pub use changes::{ProjectionError, ReadModelChanges, StockChange};
pub use writer::write_changes;
