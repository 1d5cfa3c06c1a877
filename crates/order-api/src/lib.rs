//! The HTTP contract of store-orders (`docs/API.md`) as types:
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
mod whole_number;

pub use problem::{Problem, ProblemDocument, ProblemExtensions, ProblemKind, PROBLEM_CONTENT_TYPE};

/// What a SKU may be: 1 to 64 of `[A-Za-z0-9._-]`.
pub const SKU_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// What an Idempotency-Key may be: 1 to 255 visible ASCII characters.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\x21-\\x7E]{1,255}$";
/// Text of a note: no control characters but line breaks and tabs.
pub const NOTE_PATTERN: &str = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$";
/// A product name: not blank, no control characters.
pub const NAME_PATTERN: &str =
    "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$";
/// Most minor units a unit price may be (10^12).
pub const MAX_UNIT_PRICE: i64 = 1_000_000_000_000;

/// The client's name for one checkout attempt (or stock movement), reused on
/// every retry of it.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Where a checkout comes from: `api` (the default) or `shop`. Optional;
/// recorded with the order, not part of its identity.
pub const ORDER_CHANNEL: &str = "order-channel";
/// `true` on an answer that replays an earlier request with the same key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Echoed on every response; generated when the client sent none.
pub const REQUEST_ID: &str = "x-request-id";

/// `POST /v1/checkout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// 1 to 100 lines, each SKU at most once.
    #[schema(min_items = 1, max_items = 100)]
    pub lines: Vec<CheckoutLine>,
    /// Optional, at most 1000 characters; no control characters but line
    /// breaks and tabs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 1000,
        pattern = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F]*$"
    )]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckoutLine {
    /// 1 to 64 of `[A-Za-z0-9._-]`.
    #[schema(
        example = "DOG-FOOD-3KG",
        pattern = "^[A-Za-z0-9._-]{1,64}$",
        min_length = 1,
        max_length = 64
    )]
    pub sku: String,
    /// 1 to 10000 (a whole number: `2.0` is 2).
    #[serde(deserialize_with = "whole_number::deserialize")]
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
    /// Left unpaid past the shop's deadline; its stock went back.
    Expired,
    /// A status this client does not know yet (the contract may add
    /// more): clients must accept it. Never sent by this service.
    #[serde(other, skip_serializing)]
    Unknown,
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

/// What became of a checkout's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutState {
    /// An order was placed with the key (`order` says which).
    Placed,
    /// The key was settled without an order: none was placed with it, and
    /// none ever will be.
    Abandoned,
    /// A state this client does not know yet: the contract may add states,
    /// and clients must accept them. Never sent by this service.
    #[serde(other, skip_serializing)]
    Unknown,
}

/// `GET /v1/checkouts/{key}` and `POST /v1/checkouts/{key}/abandon`: the
/// outcome of the checkout made with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Checkout)]
pub struct CheckoutStatus {
    /// The key, as the service compares it.
    pub idempotency_key: String,
    pub state: CheckoutState,
    /// The order placed with the key (`placed`), else null.
    pub order: Option<Order>,
    /// When the key was abandoned (`abandoned`), else null.
    pub abandoned_at: Option<DateTime<Utc>>,
}

/// `PUT /v1/products/{sku}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProductDefinition {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(
        example = "Dog food, 3 kg",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    pub name: String,
    /// Minor units, 0 to 10^12 (a whole number: `2.0` is 2).
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, example = 125000)]
    pub unit_price: i64,
    /// An ISO 4217 code.
    #[schema(example = "PYG")]
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
    /// 1,000,000 either way; positive when the reason is `received` (a
    /// whole number: `2.0` is 2).
    #[serde(deserialize_with = "whole_number::deserialize")]
    #[schema(minimum = -1_000_000, maximum = 1_000_000, example = 50)]
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
    pub commit_order: CommitOrderStatus,
}

/// The read model's projector. It runs inline: the read model is written
/// in the transaction that appends the events, so it is never behind them
/// and its lag is 0 by construction (the contract asks for the figure; it
/// is stated, not measured). What can be behind is a commit-order reader:
/// see [`CommitOrderStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectorStatus {
    /// `inline`: same transaction as the events.
    pub mode: String,
    pub running: bool,
    /// Events appended but not yet in the read model: always 0 inline.
    pub lag_events: i64,
    /// How long the oldest of those has waited: always 0 inline.
    pub lag_seconds: f64,
}

/// What holds back the readers that follow the events in commit order (the
/// relay, the rebuild): committed events they cannot read yet because a
/// transaction that began before them is still running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CommitOrderStatus {
    /// Committed events a commit-order reader cannot read yet.
    pub held_back_events: i64,
    /// Age of the oldest running transaction that holds them back.
    pub held_back_seconds: f64,
    /// On a Citus cluster, each node's own commit order: absent on a
    /// single PostgreSQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeCommitOrderStatus>,
}

/// One node of a Citus cluster: the committed events born on it that a
/// commit-order reader cannot read yet, and how long the oldest has waited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeCommitOrderStatus {
    /// `host:port`, or `coordinator`.
    pub node: String,
    pub held_back_events: i64,
    pub held_back_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkout_state_this_client_does_not_know_is_read_as_unknown() {
        let read = |state: &str| serde_json::from_value::<CheckoutState>(state.into());
        assert_eq!(read("placed").ok(), Some(CheckoutState::Placed));
        assert_eq!(read("abandoned").ok(), Some(CheckoutState::Abandoned));
        assert_eq!(read("expired").ok(), Some(CheckoutState::Unknown));
        let checkout: CheckoutStatus = serde_json::from_value(serde_json::json!({
            "idempotency_key": "k", "state": "held-for-review", "order": null,
            "abandoned_at": null, "reviewer": "added later"
        }))
        .unwrap_or_else(|e| panic!("a newer answer must be readable: {e}"));
        assert_eq!(checkout.state, CheckoutState::Unknown);
        // This service never sends it.
        assert!(serde_json::to_value(CheckoutState::Unknown).is_err());
    }

    #[test]
    fn an_order_in_a_status_this_client_does_not_know_is_still_read() {
        let read = |status: &str| serde_json::from_value::<OrderStatus>(status.into());
        assert_eq!(read("paid").ok(), Some(OrderStatus::Paid));
        assert_eq!(read("cancelled").ok(), Some(OrderStatus::Cancelled));
        assert_eq!(read("expired").ok(), Some(OrderStatus::Expired));
        assert_eq!(read("on_hold").ok(), Some(OrderStatus::Unknown));
        let order: Order = serde_json::from_value(serde_json::json!({
            "id": "6f1c4a52-5bd4-4f43-9a1e-0d0c7f1f4b10", "order_number": "ORD-1",
            "status": "on_hold", "customer_id": "c", "idempotency_key": "k",
            "lines": [], "currency": "PYG", "total": 0,
            "placed_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z",
            "expires_at": "added later"
        }))
        .unwrap_or_else(|e| panic!("a newer answer must be readable: {e}"));
        assert_eq!(order.status, OrderStatus::Unknown);
        assert!(serde_json::to_value(OrderStatus::Unknown).is_err());
    }
}
