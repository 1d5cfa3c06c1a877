//! Support for the `rebuild-projections` binary (the rebuild itself lives in
//! `order_store::rebuild`): a generator of realistic event histories, for the
//! rebuild's tests and its benchmark.
//!
//! # Layout
//! - `main.rs`: the `rebuild-projections` binary.
//! - `synthetic_history.rs`: histories of any size, written straight to the
//!   event store.
//! - `bin/rebuild_bench.rs`: the 1,000,000-event benchmark.

pub mod synthetic_history;
