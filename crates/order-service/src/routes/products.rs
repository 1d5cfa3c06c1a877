//! The catalogue and stock.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use order_api::{ProblemKind, ProductDefinition, StockAdjustmentRequest};
use order_domain::product::ProductError;
use order_domain::stock_adjustment::StockAdjustmentError;
use order_domain::{Currency, Money, ProductName, StockDelta, StockReason};
use order_store::{CatalogueError, CheckoutOutcome};

use super::json_answer;
use crate::auth::Caller;
use crate::extract::{IdempotencyKeyHeader, JsonBody, QueryPairs, RequestId, SkuPath};
use crate::metrics;
use crate::problem::ApiError;
use crate::state::AppState;

fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(ProblemKind::InvalidBody, format!("{field}: {reason}")).with_field(field)
}

/// Creates or updates a product (staff).
#[utoipa::path(
    put,
    path = "/v1/products/{sku}",
    tag = "catalogue",
    params(("sku" = String, Path, description = "1 to 64 of [A-Za-z0-9._-]")),
    request_body = ProductDefinition,
    responses(
        (status = 200, body = order_api::Product),
        (status = 403, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn define_product(
    State(state): State<AppState>,
    caller: Caller,
    sku: SkuPath,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody<ProductDefinition>,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let sku = sku.for_write()?;
    let name = ProductName::try_from(body.name).map_err(|e| invalid("name", e.reason))?;
    let currency =
        Currency::try_from(body.currency.as_str()).map_err(|e| invalid("currency", e.reason))?;
    if !(0..=order_api::MAX_UNIT_PRICE).contains(&body.unit_price) {
        return Err(invalid(
            "unit_price",
            format_args!(
                "must be from 0 to {} (minor units)",
                order_api::MAX_UNIT_PRICE
            ),
        ));
    }
    let context = caller.command_context(request_id)?;
    let product = state
        .catalogue
        .define_product(
            &context,
            sku,
            name,
            Money::new(body.unit_price, currency),
            Utc::now(),
        )
        .await
        .map_err(catalogue_problem)?;
    metrics::command("define_product", "changed");
    Ok(json_answer(StatusCode::OK, false, product))
}

/// Books a stock movement once per Idempotency-Key (staff).
#[utoipa::path(
    post,
    path = "/v1/products/{sku}/stock",
    tag = "catalogue",
    params(
        ("sku" = String, Path),
        ("Idempotency-Key" = String, Header, description = "One key per stock movement, reused on retries"),
    ),
    request_body = StockAdjustmentRequest,
    responses(
        (status = 201, description = "Booked", body = order_api::Product),
        (status = 200, description = "A replay: nothing changed", body = order_api::Product,
         headers(("Idempotent-Replayed" = String, description = "true"))),
        (status = 403, description = "Staff only", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Stock would go below zero", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 422, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn adjust_stock(
    State(state): State<AppState>,
    caller: Caller,
    sku: SkuPath,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    RequestId(request_id): RequestId,
    JsonBody(body): JsonBody<StockAdjustmentRequest>,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let sku = sku.for_write()?;
    let delta = StockDelta::try_from(body.delta).map_err(|e| invalid("delta", e.reason))?;
    let reason = match body.reason {
        order_api::StockReason::Received => StockReason::Received,
        order_api::StockReason::Adjustment => StockReason::Adjustment,
        order_api::StockReason::Count => StockReason::Count,
    };
    let context = caller.command_context(request_id)?;
    let movement = state
        .catalogue
        .adjust_stock(&context, key, sku, delta, reason, Utc::now())
        .await
        .map_err(catalogue_problem)?;
    let product = movement.product;
    Ok(match movement.outcome {
        CheckoutOutcome::Created => {
            metrics::command("adjust_stock", "created");
            json_answer(StatusCode::CREATED, false, product)
        }
        CheckoutOutcome::Replayed => {
            metrics::command("adjust_stock", "replayed");
            json_answer(StatusCode::OK, true, product)
        }
    })
}

/// One product with its stock on hand.
#[utoipa::path(
    get,
    path = "/v1/products/{sku}",
    tag = "catalogue",
    params(("sku" = String, Path)),
    responses(
        (status = 200, body = order_api::Product),
        (status = 404, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    sku: SkuPath,
) -> Result<Response, ApiError> {
    let sku = sku.for_read()?;
    let product = state
        .catalogue_queries
        .find_product(&caller.tenant, &sku)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(json_answer(StatusCode::OK, false, product))
}

/// Products in SKU order.
#[utoipa::path(
    get,
    path = "/v1/products",
    tag = "catalogue",
    params(
        ("limit" = Option<u16>, Query, description = "1 to 100, default 20"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, body = order_api::ProductList),
        (status = 400, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_products(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    query.only(&["limit", "after"])?;
    let after = query
        .get("after")?
        .map(|raw| {
            state.keys.cursors().open(raw).map_err(|e| {
                ApiError::new(ProblemKind::InvalidQuery, e.to_string()).with_field("after")
            })
        })
        .transpose()?;
    let page = state
        .catalogue_queries
        .list_products(&caller.tenant, query.limit()?, after.as_deref())
        .await?;
    Ok(json_answer(
        StatusCode::OK,
        false,
        order_api::ProductList {
            products: page.products.into_iter().collect(),
            next: page.next.map(|sku| state.keys.cursors().seal(&sku)),
        },
    ))
}

fn catalogue_problem(err: CatalogueError) -> ApiError {
    match err {
        CatalogueError::UnknownSku { sku } => ApiError::new(
            ProblemKind::NotFound,
            format!("no product {sku}; define it with PUT first"),
        )
        .with_sku(sku.to_string()),
        CatalogueError::InsufficientStock {
            sku,
            requested,
            available,
        } => {
            let mut answer = ApiError::new(
                ProblemKind::StockBelowZero,
                format!("removing {requested} of {sku} would take stock below zero: {available} on hand"),
            )
            .with_sku(sku.to_string());
            answer.problem.extensions.requested = Some(requested);
            answer.problem.extensions.available = Some(available);
            answer
        }
        CatalogueError::Adjustment(StockAdjustmentError::IdempotencyKeyReused) => ApiError::new(
            ProblemKind::IdempotencyKeyReused,
            StockAdjustmentError::IdempotencyKeyReused.to_string(),
        ),
        CatalogueError::Adjustment(e @ StockAdjustmentError::ReceiptMustAdd) => invalid("delta", e),
        CatalogueError::Product(e @ ProductError::NegativePrice) => invalid("unit_price", e),
        CatalogueError::Store(store) => store.into(),
    }
}
