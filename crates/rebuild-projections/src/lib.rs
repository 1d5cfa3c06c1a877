//! The `rebuild-projections` command line (the rebuild itself lives in
//! `order_store::rebuild`), and a generator of realistic event histories for
//! the rebuild's tests and its benchmark.
//!
//! # Layout
//! - `cli.rs`: the `rebuild-projections` command line (`main.rs` runs it).
//! - `synthetic_history.rs`: histories of any size, written straight to the
//!   event store.
//! - `bin/rebuild_bench.rs`: the 1,000,000-event benchmark.

pub mod cli;
pub mod synthetic_history;
