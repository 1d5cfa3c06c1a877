//! `POST /v1/checkout`: the idempotent checkout.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::Utc;
use order_api::{CheckoutRequest, ProblemKind};
use order_domain::order::{Checkout, OrderError, RequestedLine};
use order_domain::{CustomerId, IdempotencyKey, Order, OrderNote, Quantity, Sku};
use order_store::{CheckoutError, CheckoutOutcome};

use super::json_answer;
use crate::auth::Caller;
use crate::extract::{IdempotencyKeyHeader, JsonBody, OrderChannelHeader, RequestId};
use crate::metrics;
use crate::problem::ApiError;
use crate::state::AppState;

/// Places the order for (tenant, Idempotency-Key), or replays it.
#[utoipa::path(
    post,
    path = "/v1/checkout",
    tag = "checkout",
    request_body = CheckoutRequest,
    params(
        ("Idempotency-Key" = String, Header,
         description = "1 to 255 visible ASCII characters: a fresh UUIDv4 per checkout, reused on every retry of it"),
        ("Order-Channel" = Option<String>, Header,
         description = "Where the checkout comes from (recorded with the order, not part of its identity): `api` when absent"),
    ),
    responses(
        (status = 201, description = "The order was placed", body = order_api::Order,
         headers(("Location" = String, description = "/v1/orders/{id}"))),
        (status = 200, description = "A replay: the same order as the 201, as it stands now", body = order_api::Order,
         headers(("Idempotent-Replayed" = String, description = "true"))),
        (status = 400, description = "Idempotency-Key missing or invalid, Order-Channel invalid, or malformed JSON", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Out of stock (`/out-of-stock`), the customer's unpaid orders would exceed a bound (`/unpaid-limit`, naming it in `limit`), or the key's checkout was abandoned (`/checkout-abandoned`); nothing is stored", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Key reused for a different request, unknown SKU, or invalid body", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded; retry with the same key", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKeyHeader(idempotency_key): IdempotencyKeyHeader,
    OrderChannelHeader(channel): OrderChannelHeader,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let context = caller.command_context(request_id)?;
    let checkout =
        read_checkout(idempotency_key, caller.customer_id()?, body)?.from_channel(channel);
    match state.orders.place_order(&context, checkout).await {
        Ok(placed) => {
            let order = placed.order;
            Ok(match placed.outcome {
                CheckoutOutcome::Created => {
                    metrics::command("checkout", "created");
                    let mut response = json_answer(StatusCode::CREATED, false, &order);
                    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id))
                    {
                        response.headers_mut().insert(header::LOCATION, location);
                    }
                    response
                }
                CheckoutOutcome::Replayed => {
                    metrics::command("checkout", "replayed");
                    json_answer(StatusCode::OK, true, &order)
                }
            })
        }
        Err(err) => {
            let answer = checkout_problem(err);
            metrics::command(
                "checkout",
                if answer.problem.status.is_some_and(|s| s.is_server_error()) {
                    "failed"
                } else {
                    "rejected"
                },
            );
            Err(answer)
        }
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(ProblemKind::InvalidBody, format!("{field}: {reason}")).with_field(field)
}

/// The body as the domain's [`Checkout`]: each line a valid SKU and
/// quantity, a valid note, then the domain's line rules (1 to 100 lines,
/// each SKU once), with the offending field named. Its fingerprint is
/// computed here, once.
pub fn read_checkout(
    idempotency_key: IdempotencyKey,
    customer: CustomerId,
    body: CheckoutRequest,
) -> Result<Checkout, ApiError> {
    if body.lines.len() > Order::MAX_LINES {
        // Before parsing each line: a 100,000-line body is refused whole.
        return Err(invalid(
            "lines",
            OrderError::TooManyLines {
                count: body.lines.len(),
                max: Order::MAX_LINES,
            },
        ));
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, line) in body.lines.iter().enumerate() {
        let sku = Sku::try_from(line.sku.as_str())
            .map_err(|e| invalid(&format!("lines[{i}].sku"), e.reason))?;
        let quantity = Quantity::try_from(line.quantity)
            .map_err(|e| invalid(&format!("lines[{i}].quantity"), e.reason))?;
        lines.push(RequestedLine { sku, quantity });
    }
    let note = body
        .note
        .map(OrderNote::try_from)
        .transpose()
        .map_err(|e| invalid("note", e.reason))?;
    Checkout::new(idempotency_key, customer, lines, note, Utc::now()).map_err(|broken| match broken
        .line
    {
        Some(i) => invalid(&format!("lines[{i}].sku"), broken.error),
        None => invalid("lines", broken.error),
    })
}

fn checkout_problem(err: CheckoutError) -> ApiError {
    match err {
        CheckoutError::UnknownSku { sku } => ApiError::new(
            ProblemKind::UnknownSku,
            format!("SKU {sku} is not in this shop's catalogue"),
        )
        .with_sku(sku.to_string()),
        CheckoutError::OutOfStock { sku, requested, available } => {
            let mut problem = ApiError::new(
                ProblemKind::OutOfStock,
                format!("not enough {sku} in stock: requested {requested}, available {available}"),
            )
            .with_sku(sku.to_string());
            problem.problem.extensions.requested = Some(requested);
            problem.problem.extensions.available = Some(available);
            problem
        }
        CheckoutError::UnpaidLimit(refusal) => {
            let mut problem = ApiError::new(ProblemKind::UnpaidLimit, CheckoutError::UnpaidLimit(refusal).to_string());
            problem.problem.extensions.limit = Some(refusal.bound.as_str().to_owned());
            problem.problem.extensions.most = Some(refusal.most);
            problem.problem.extensions.held = Some(refusal.held);
            problem
        }
        CheckoutError::Rejected(OrderError::IdempotencyKeyReused) => ApiError::new(
            ProblemKind::IdempotencyKeyReused,
            OrderError::IdempotencyKeyReused.to_string(),
        ),
        CheckoutError::Rejected(OrderError::CheckoutAbandoned) => ApiError::new(
            ProblemKind::CheckoutAbandoned,
            OrderError::CheckoutAbandoned.to_string(),
        ),
        CheckoutError::Rejected(OrderError::CurrencyMismatch { sku, expected, found }) => ApiError::new(
            ProblemKind::InvalidBody,
            format!("SKU {sku} is priced in {found}, the rest of the order in {expected}: order it separately"),
        )
        .with_field("lines")
        .with_sku(sku.to_string()),
        CheckoutError::Rejected(rejected) => {
            ApiError::new(ProblemKind::InvalidBody, rejected.to_string()).with_field("lines")
        }
        CheckoutError::Store(store) => store.into(),
    }
}
