//! The HTTP contract of store-orders (`shared/spec/http-api.md`) as types:
//! one definition for the service, the typed client and the OpenAPI document.
//!
//! Requests keep loose types (`String`, `i64`) on purpose: the service parses
//! them into the domain's value types so it can name the offending field in
//! its problem answer, instead of failing the whole body at deserialization.
//! Unknown request fields are ignored (a client may send prices: the server
//! prices every line itself).
//!
//! # Layout
//! - `lib.rs`: headers, requests, responses.
//! - `problem.rs`: the problem document and every problem type.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

mod problem;

pub use problem::{Problem, ProblemExtensions, ProblemKind, PROBLEM_CONTENT_TYPE};

/// The client's name for one checkout attempt (or stock movement), reused on
/// every retry of it.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// `true` on an answer that replays an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Echoed on every response; generated when the client sent none.
pub const REQUEST_ID: &str = "x-request-id";

/// `POST /v1/checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// 1 to 100 lines, each SKU at most once.
    pub lines: Vec<CheckoutLine>,
    /// Optional, at most 1000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutLine {
    /// 1 to 64 of `[A-Za-z0-9._-]`.
    #[schema(example = "DOG-FOOD-3KG")]
    pub sku: String,
    /// 1 to 10000.
    #[schema(minimum = 1, maximum = 10000, example = 2)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Cancelled,
}

/// An order. Money is integer minor units of `currency`; times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    /// Human readable, unique per tenant, e.g. `ORD-G8ES-RBY6-N1V8`.
    pub order_number: String,
    pub status: OrderStatus,
    pub customer_id: String,
    /// The Idempotency-Key of the checkout that placed the order.
    pub idempotency_key: Option<String>,
    pub lines: Vec<OrderLine>,
    #[schema(example = "PYG")]
    pub currency: String,
    pub total: i64,
    /// The checkout's note, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub sku: String,
    /// The product's name when the order was placed.
    pub name: String,
    pub quantity: i64,
    /// Minor units, as priced by the server when the order was placed.
    pub unit_price: i64,
    pub line_total: i64,
}

/// `GET /v1/orders`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    pub orders: Vec<Order>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// `PUT /v1/products/{sku}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductDefinition {
    pub name: String,
    /// Minor units, at least 0.
    pub unit_price: i64,
    /// ISO 4217.
    pub currency: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockReason {
    /// Goods received: delta must be positive.
    Received,
    Adjustment,
    Count,
}

/// `POST /v1/products/{sku}/stock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StockAdjustmentRequest {
    /// Units to add (positive) or remove (negative), not zero, at most
    /// 1,000,000 either way.
    pub delta: i64,
    pub reason: StockReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub on_hand: i64,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/products`: in SKU order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductList {
    pub products: Vec<Product>,
    pub next: Option<String>,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub database: String,
    pub migrations: String,
    pub projector: ProjectorStatus,
}

/// The read model is projected in the transaction that appends the events,
/// so it is never behind them. What can lag is a commit-order reader (the
/// rebuild job): events of transactions still running, or committed behind
/// a transaction that is still running, cannot be read in order yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectorStatus {
    /// `inline`: same transaction as the events.
    pub mode: String,
    pub running: bool,
    /// Committed events a commit-order reader cannot read yet.
    pub lag_events: i64,
    /// Age of the oldest running transaction that holds those back.
    pub lag_seconds: f64,
}
