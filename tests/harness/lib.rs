//! The harness shared by the end-to-end tests: a fresh database per test,
//! and builders for the shop's values.
//!
//! Tests panic on failure by design, so unwrap/expect are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod browser;
pub mod citus;
pub mod commit_cutting_proxy;
pub mod database;
pub mod fixtures;
pub mod http_proxy;
pub mod nats;
pub mod network_namespace;
pub mod own_cluster;
pub mod proxy;
pub mod service_process;

pub use app::{TestApp, STORM_UNPAID_LIMIT};
pub use database::TestDatabase;
