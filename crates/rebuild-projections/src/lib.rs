//! Rebuilding store-orders' read model from its event store, while the
//! service runs: the engine, the `rebuild-projections` command line, and a
//! generator of realistic event histories for its tests and benchmark.
//!
//! The read model is written inline by the append (`order_store`); this
//! crate is how an operator gets it back from the events alone: after a
//! projection bug is fixed, after a restore, or to check (`--verify`) that
//! the live tables equal the fold of the events. It folds events through
//! the same `order_store::projection` code as the live write path, so there
//! is one projection, not two.
//!
//! # Layout
//! - `rebuild/`: the engine. `mod.rs` runs the stages (replay into shadow
//!   tables, index, cut over by swap, verify or in place); `reader.rs` reads
//!   events in gap-safe commit order (`../sql/read_events_*.sql`, checked
//!   against the schema at compile time like the store's queries; the
//!   shadow tables' DDL is built at run time from the catalogue);
//!   `shadow.rs` creates, completes and swaps the shadow tables;
//!   `compare.rs` compares them with the live ones row by row;
//!   `progress.rs` is what it tells its operator.
//! - `cli.rs`: the `rebuild-projections` command line (`main.rs` runs it).
//! - `synthetic_history.rs`: histories of any size, written straight to the
//!   event store.
//! - `bin/rebuild_bench.rs`: the 1,000,000-event benchmark.

pub mod cli;
pub mod rebuild;
pub mod synthetic_history;

pub use rebuild::{
    rebuild, verify, DriftReport, RebuildError, RebuildMode, RebuildOptions, RebuildProgress,
    RebuildSummary,
};
