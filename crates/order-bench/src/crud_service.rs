//! Baseline 1, the CRUD service: the design store-orders replaces, served
//! exactly as the service is served.
//!
//! The checkout is one call of the PL/pgSQL `crud.process_checkout`
//! (`sql/crud_schema.sql`): insert the order with `ON CONFLICT
//! (tenant_id, idempotency_key) DO NOTHING` (an existing order answers a
//! retry), lock the products, insert the lines, decrement stock. Around it,
//! everything the service has: the same JWT authentication ([`Caller`]), the
//! same extractors and line validation, the same problem documents, and the
//! same middleware ([`order_service::with_middleware`]: request ids,
//! tracing with a log line per request, metrics, timeout, body limit). The
//! difference between the two is the price of event sourcing.
//!
//! Run as a child process of the bench (`order-bench __crud-service`), with
//! the service's environment variables.

use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use order_api::{CheckoutRequest, ProblemKind};
use order_service::auth::Caller;
use order_service::extract::{IdempotencyKeyHeader, JsonBody};
use order_service::problem::ApiError;
use order_service::routes::checkout::read_checkout;
use order_service::routes::json_answer;
use order_service::JwtKeys;
use sqlx::PgPool;

/// The baseline's schema and its checkout function.
pub const SCHEMA: &str = include_str!("../sql/crud_schema.sql");

#[derive(Clone)]
struct CrudState {
    pool: PgPool,
    keys: JwtKeys,
}

impl FromRef<CrudState> for JwtKeys {
    fn from_ref(state: &CrudState) -> Self {
        state.keys.clone()
    }
}

/// The child process (see [`crate::service::serve_baseline`]).
pub async fn main() -> anyhow::Result<()> {
    crate::service::serve_baseline(|pool, keys| {
        Router::new()
            .route("/v1/checkout", post(checkout))
            .route("/readyz", get(ready))
            .with_state(CrudState { pool, keys })
    })
    .await
}

async fn ready(State(state): State<CrudState>) -> StatusCode {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// One row of `crud.process_checkout`: the order, and one of its lines.
#[derive(sqlx::FromRow)]
struct CheckoutRow {
    outcome: String,
    id: uuid::Uuid,
    order_number: String,
    status: String,
    currency: String,
    total: i64,
    note: Option<String>,
    placed_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    sku: Option<String>,
    name: Option<String>,
    quantity: Option<i32>,
    unit_price: Option<i64>,
    line_total: Option<i64>,
}

async fn checkout(
    State(state): State<CrudState>,
    caller: Caller,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(body): JsonBody<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let checkout = read_checkout(key, caller.customer_id()?, body)?;
    let mut lines = checkout.lines().to_vec();
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i32> = lines
        .iter()
        .map(|l| i32::try_from(l.quantity.get()).unwrap_or(i32::MAX))
        .collect();
    let rows: Vec<CheckoutRow> = sqlx::query_as(
        "SELECT outcome, id, order_number, status, currency, total, note, placed_at, updated_at, \
                sku, name, quantity, unit_price, line_total \
         FROM crud.process_checkout($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(caller.tenant.as_str())
    .bind(checkout.idempotency_key().as_str())
    .bind(checkout.customer().as_str())
    .bind(checkout.fingerprint().as_str())
    .bind(checkout.note().map(|n| n.as_str()))
    .bind(&skus)
    .bind(&quantities)
    .fetch_all(&state.pool)
    .await
    .map_err(refusal)?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::internal(&"process_checkout returned no row"))?;
    let status = match first.outcome.as_str() {
        "created" => StatusCode::CREATED,
        "replayed" => StatusCode::OK,
        _ => {
            return Err(ApiError::new(
                ProblemKind::IdempotencyKeyReused,
                "this Idempotency-Key was used for another request",
            ))
        }
    };
    let order = order_api::Order {
        id: first.id,
        order_number: first.order_number.clone(),
        status: match first.status.as_str() {
            "placed" => order_api::OrderStatus::Placed,
            "paid" => order_api::OrderStatus::Paid,
            "shipped" => order_api::OrderStatus::Shipped,
            _ => order_api::OrderStatus::Cancelled,
        },
        customer_id: checkout.customer().to_string(),
        idempotency_key: Some(checkout.idempotency_key().to_string()),
        lines: rows
            .iter()
            .map(|r| order_api::OrderLine {
                sku: r.sku.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
                quantity: i64::from(r.quantity.unwrap_or_default()),
                unit_price: r.unit_price.unwrap_or_default(),
                line_total: r.line_total.unwrap_or_default(),
            })
            .collect(),
        currency: first.currency.clone(),
        total: first.total,
        note: first.note.clone(),
        placed_at: first.placed_at,
        updated_at: first.updated_at,
    };
    let mut response = json_answer(status, status == StatusCode::OK, &order);
    if status == StatusCode::CREATED {
        if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    Ok(response)
}

/// The function's refusals (`CR001` out of stock, `CR002` unknown SKU) as
/// the service's problems; anything else as a 503 or 500.
fn refusal(err: sqlx::Error) -> ApiError {
    if let sqlx::Error::Database(db) = &err {
        match db.code().as_deref() {
            Some("CR001") => {
                let detail = db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|pg| pg.detail())
                    .unwrap_or_default()
                    .to_owned();
                let mut words = detail.split(' ');
                let sku = words.next().unwrap_or_default().to_owned();
                let mut problem = ApiError::new(
                    ProblemKind::OutOfStock,
                    format!("not enough {sku} in stock"),
                )
                .with_sku(sku);
                problem.problem.extensions.requested = words.next().and_then(|w| w.parse().ok());
                problem.problem.extensions.available = words.next().and_then(|w| w.parse().ok());
                return problem;
            }
            Some("CR002") => {
                return ApiError::new(
                    ProblemKind::UnknownSku,
                    "a SKU is not in this shop's catalogue",
                )
            }
            _ => {}
        }
    }
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => ApiError::unavailable(&err),
        other => ApiError::internal(&other),
    }
}
