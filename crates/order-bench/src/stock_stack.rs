//! Baseline 2, the stock stack: the checkout built the way the cqrs-es and
//! postgres-es documentation shows it, served exactly as the service is.
//!
//! - `CqrsFramework` over `PostgresEventRepository` (`postgres_cqrs`), with
//!   our own `Order` aggregate (the same `decide`), the Idempotency-Key as
//!   the aggregate id;
//! - the read side as cqrs-es `Query`s over `PostgresViewRepository`: the
//!   order as a `GenericQuery` (`order_view`), and stock on hand per SKU as
//!   a `Query` of its own (`inventory_view`: one order moves several SKUs,
//!   which a `GenericQuery` keyed by the order cannot). That one is an
//!   `async_trait` implementation: cqrs-es 0.5's `Query` is declared with
//!   async-trait, and this is async-trait's role in the workspace;
//! - prices and the stock check read from the inventory view, as a service
//!   reads its read side;
//! - postgres-es' own schema, in a database of its own
//!   (`sql/stock_stack_schema.sql`);
//! - around it, everything the service has: the same JWT authentication,
//!   extractors, problem documents and middleware.
//!
//! Nothing here is made worse than the documentation makes it; nothing is
//! repaired either. What it gets wrong under duplicates, last units and
//! concurrency is what `order-bench` counts (`stock_stack_audit`).
//!
//! Run as a child process of the bench (`order-bench __stock-stack`), with
//! the service's environment variables.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use cqrs_es::persist::{GenericQuery, ViewRepository};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, Query, View};
use order_api::{CheckoutRequest, ProblemKind};
use order_domain::order::{OrderCommand, OrderError, OrderEvent};
use order_domain::{Currency, Money, Order, ProductName};
use order_service::auth::Caller;
use order_service::extract::{IdempotencyKeyHeader, JsonBody};
use order_service::problem::ApiError;
use order_service::routes::checkout::read_checkout;
use order_service::routes::json_answer;
use order_service::JwtKeys;
use postgres_es::{PostgresCqrs, PostgresViewRepository};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// postgres-es' schema and the two view tables.
pub const SCHEMA: &str = include_str!("../sql/stock_stack_schema.sql");

/// The order, as its events made it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct OrderView {
    order: Order,
}

impl View<Order> for OrderView {
    fn update(&mut self, event: &EventEnvelope<Order>) {
        self.order.apply(event.payload.clone());
    }
}

/// One SKU of the catalogue with its stock on hand.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct InventoryView {
    pub sku: String,
    pub name: String,
    pub unit_price: i64,
    pub currency: String,
    pub on_hand: i64,
}

impl View<Order> for InventoryView {
    /// Moved by [`InventoryQuery`], SKU by SKU, never by one order's id.
    fn update(&mut self, _event: &EventEnvelope<Order>) {}
}

type OrderViews = PostgresViewRepository<OrderView, Order>;
type InventoryViews = PostgresViewRepository<InventoryView, Order>;

/// Takes each line of a placed order off its SKU's stock, and gives a
/// cancelled order's back.
struct InventoryQuery {
    views: Arc<InventoryViews>,
}

#[async_trait]
impl Query<Order> for InventoryQuery {
    async fn dispatch(&self, order_id: &str, events: &[EventEnvelope<Order>]) {
        for envelope in events {
            let moves: Vec<(String, i64)> = match &envelope.payload {
                OrderEvent::OrderPlaced(placed) => placed
                    .lines
                    .iter()
                    .map(|l| (l.sku.to_string(), -i64::from(l.quantity)))
                    .collect(),
                OrderEvent::OrderCancelled(cancelled) => cancelled
                    .restocked
                    .iter()
                    .map(|l| (l.sku.to_string(), i64::from(l.quantity)))
                    .collect(),
                _ => Vec::new(),
            };
            for (sku, delta) in moves {
                // What the documentation's GenericQuery does with an error:
                // report it, and carry on.
                let moved = match self.views.load_with_context(&sku).await {
                    Ok(Some((mut view, context))) => {
                        view.on_hand += delta;
                        self.views.update_view(view, context).await
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = moved {
                    tracing::warn!(order_id, sku, error = %e, "inventory view not updated");
                }
            }
        }
    }
}

#[derive(Clone)]
struct StockState {
    cqrs: Arc<PostgresCqrs<Order>>,
    orders: Arc<OrderViews>,
    inventory: Arc<InventoryViews>,
    keys: JwtKeys,
}

impl FromRef<StockState> for JwtKeys {
    fn from_ref(state: &StockState) -> Self {
        state.keys.clone()
    }
}

/// The child process (see [`crate::service::serve_baseline`]), over its
/// own database.
pub async fn main() -> anyhow::Result<()> {
    crate::service::serve_baseline(|pool, keys| {
        Router::new()
            .route("/v1/checkout", post(checkout))
            .route("/readyz", get(|| async { StatusCode::OK }))
            .with_state(stock_state(pool, keys))
    })
    .await
}

fn stock_state(pool: PgPool, keys: JwtKeys) -> StockState {
    let orders = Arc::new(OrderViews::new("order_view", pool.clone()));
    let inventory = Arc::new(InventoryViews::new("inventory_view", pool.clone()));
    let queries: Vec<Box<dyn Query<Order>>> = vec![
        Box::new(GenericQuery::new(orders.clone())),
        Box::new(InventoryQuery {
            views: inventory.clone(),
        }),
    ];
    StockState {
        cqrs: Arc::new(postgres_es::postgres_cqrs(pool, queries, ())),
        orders,
        inventory,
        keys,
    }
}

fn store_error(error: &dyn std::fmt::Display) -> ApiError {
    ApiError::internal(error)
}

async fn checkout(
    State(state): State<StockState>,
    caller: Caller,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let checkout = read_checkout(key, caller.customer_id()?, body)?;
    // Price and check stock from the read side.
    let mut prices = Vec::with_capacity(checkout.lines().len());
    for line in checkout.lines() {
        let view = state
            .inventory
            .load(line.sku.as_str())
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| {
                ApiError::new(
                    ProblemKind::UnknownSku,
                    format!("SKU {} is not in this shop's catalogue", line.sku),
                )
                .with_sku(line.sku.to_string())
            })?;
        let requested = i64::from(line.quantity);
        if view.on_hand < requested {
            let mut problem = ApiError::new(
                ProblemKind::OutOfStock,
                format!("not enough {} in stock", line.sku),
            )
            .with_sku(line.sku.to_string());
            problem.problem.extensions.requested = Some(requested);
            problem.problem.extensions.available = Some(view.on_hand);
            return Err(problem);
        }
        let name = ProductName::try_from(view.name.as_str()).map_err(|e| store_error(&e))?;
        let currency = Currency::try_from(view.currency.as_str()).map_err(|e| store_error(&e))?;
        prices.push((name, Money::new(view.unit_price, currency)));
    }
    let mut prices = prices.into_iter();
    let command = checkout
        .priced(caller.tenant.clone(), |_| prices.next())
        .map(OrderCommand::PlaceOrder)
        .map_err(|e| ApiError::new(ProblemKind::InvalidBody, e.to_string()))?;
    // The Idempotency-Key as the aggregate id.
    let id = checkout.idempotency_key().as_str();
    match state.cqrs.execute(id, command).await {
        Ok(()) => {}
        Err(AggregateError::UserError(OrderError::IdempotencyKeyReused)) => {
            return Err(ApiError::new(
                ProblemKind::IdempotencyKeyReused,
                OrderError::IdempotencyKeyReused.to_string(),
            ))
        }
        Err(AggregateError::UserError(refused)) => {
            return Err(ApiError::new(ProblemKind::InvalidBody, refused.to_string()))
        }
        // Another request appended to the stream first: the documentation's
        // answer is "try again".
        Err(AggregateError::AggregateConflict) => {
            return Err(ApiError::unavailable(&"the order changed concurrently"))
        }
        Err(other) => return Err(store_error(&other)),
    }
    // The order as the read side has it (after `execute`, the queries have
    // run). cqrs-es does not say whether this request stored anything.
    let order = state
        .orders
        .load(id)
        .await
        .map_err(|e| store_error(&e))?
        .and_then(|view| view.order.details().map(order_store::order_of))
        .ok_or_else(|| store_error(&"the order's view is missing"))?;
    let mut response = json_answer(StatusCode::CREATED, false, &order);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Catalogue rows (sku, name, unit price, currency, on hand) as inventory
/// views, version 1; and, for the audit, the stock each started with
/// (`stock_stack_seed`: the bench's bookkeeping, not the stack's).
pub async fn seed(
    pool: &PgPool,
    rows: &[(String, String, i64, String, i64)],
) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS stock_stack_seed (sku text PRIMARY KEY, on_hand bigint NOT NULL)",
    )
    .execute(pool)
    .await?;
    for chunk in rows.chunks(500) {
        let skus: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
        let stock: Vec<i64> = chunk.iter().map(|r| r.4).collect();
        sqlx::query("INSERT INTO stock_stack_seed SELECT * FROM unnest($1::text[], $2::bigint[])")
            .bind(&skus)
            .bind(&stock)
            .execute(pool)
            .await?;
        let mut ids = Vec::with_capacity(chunk.len());
        let mut payloads = Vec::with_capacity(chunk.len());
        for (sku, name, unit_price, currency, on_hand) in chunk {
            ids.push(sku.clone());
            payloads.push(serde_json::to_value(InventoryView {
                sku: sku.clone(),
                name: name.clone(),
                unit_price: *unit_price,
                currency: currency.clone(),
                on_hand: *on_hand,
            })?);
        }
        sqlx::query(
            "INSERT INTO inventory_view (view_id, version, payload) \
             SELECT id, 1, payload FROM unnest($1::text[], $2::json[]) AS v(id, payload)",
        )
        .bind(&ids)
        .bind(&payloads)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// What the stock stack's store says after a run: the events against its
/// own read side.
#[derive(Debug, Clone, Copy, Default)]
pub struct Audit {
    /// Orders in the event store.
    pub orders: i64,
    /// Orders without an order view.
    pub orders_without_view: i64,
    /// SKUs whose view's stock differs from the events'.
    pub skus_wrong: i64,
    /// Units by which those views differ, in all.
    pub units_wrong: i64,
}

/// Compares the stock stack's views with its events.
pub async fn audit(pool: &PgPool) -> anyhow::Result<Audit> {
    let (orders, orders_without_view): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE v.view_id IS NULL) \
         FROM events AS e LEFT JOIN order_view AS v ON v.view_id = e.aggregate_id \
         WHERE e.aggregate_type = 'Order' AND e.event_type = 'OrderPlaced'",
    )
    .fetch_one(pool)
    .await?;
    let (skus_wrong, units_wrong): (i64, Option<i64>) = sqlx::query_as(
        "WITH sold AS ( \
             SELECT line->>'sku' AS sku, sum((line->>'quantity')::bigint) AS units \
             FROM events, json_array_elements(payload->'OrderPlaced'->'lines') AS line \
             WHERE aggregate_type = 'Order' AND event_type = 'OrderPlaced' GROUP BY 1), \
         seeded AS (SELECT sku, on_hand FROM stock_stack_seed) \
         SELECT count(*), sum(abs(d))::bigint FROM ( \
             SELECT s.on_hand - coalesce(sold.units, 0) - (v.payload->>'on_hand')::bigint AS d \
             FROM seeded AS s JOIN inventory_view AS v ON v.view_id = s.sku \
             LEFT JOIN sold ON sold.sku = s.sku) AS diff WHERE d <> 0",
    )
    .fetch_one(pool)
    .await?;
    Ok(Audit {
        orders,
        orders_without_view,
        skus_wrong,
        units_wrong: units_wrong.unwrap_or(0),
    })
}
