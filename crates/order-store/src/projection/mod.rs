//! The read model's projection: one implementation for the live write path
//! and the rebuild.
//!
//! [`ReadModelChanges`] folds events into row changes (pure, no I/O);
//! [`write_changes`] hands a fold to the database function
//! `project_read_model` (migrations 8 and 9), tenant by tenant, as six
//! arrays of rows. The live path folds the events of one command and passes
//! them to `append_to_stream` (or, for an abandoned checkout,
//! `abandon_checkout`), which calls the same function in the transaction
//! that appends them; the rebuild folds thousands of events per batch and
//! writes them into shadow tables. The SQL names tables without a schema, so
//! `search_path` decides which tables it writes.

mod changes;
pub(crate) mod rows;
mod writer;

pub use changes::{ProjectionError, ReadModelChanges, StockChange, TenantChanges};
pub(crate) use writer::projection_error;
pub use writer::write_changes;
