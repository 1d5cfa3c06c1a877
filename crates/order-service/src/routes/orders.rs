//! Reading orders, and their transitions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use order_api::ProblemKind;
use order_domain::order::OrderError;
use order_domain::OrderStatus;
use order_store::{OrderCommandError, OrderCursor, OrderFilter, OrderTransition};

use super::json_answer;
use crate::auth::Caller;
use crate::extract::{OrderIdPath, QueryPairs, RequestId};
use crate::metrics;
use crate::problem::ApiError;
use crate::state::AppState;

/// One order. Customers see their own; staff all of their tenant's.
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "The order id")),
    responses(
        (status = 200, body = order_api::Order),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not one the caller may see", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
) -> Result<Response, ApiError> {
    let order = state
        .order_queries
        .find_order(&caller.tenant, id, &caller.visibility()?)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(json_answer(StatusCode::OK, false, order))
}

/// Orders, newest first.
#[utoipa::path(
    get,
    path = "/v1/orders",
    tag = "orders",
    params(
        ("status" = Option<order_api::OrderStatus>, Query, description = "Only orders in this status"),
        ("limit" = Option<u16>, Query, description = "1 to 100, default 20"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, body = order_api::OrderList),
        (status = 400, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    query.only(&["status", "limit", "after"])?;
    let status = match query.get("status")? {
        None => None,
        Some(raw) => Some(raw.parse::<OrderStatus>().map_err(|_| {
            ApiError::new(
                ProblemKind::InvalidQuery,
                "status must be placed, paid, shipped or cancelled",
            )
            .with_field("status")
        })?),
    };
    let after = match query.get("after")? {
        None => None,
        Some(raw) => {
            let foreign = |e: &dyn std::fmt::Display| {
                ApiError::new(ProblemKind::InvalidQuery, e.to_string()).with_field("after")
            };
            let plain = state.keys.cursors().open(raw).map_err(|e| foreign(&e))?;
            Some(OrderCursor::decode(&plain).map_err(|e| foreign(&e))?)
        }
    };
    let filter = OrderFilter {
        status,
        limit: query.limit()?,
        after,
    };
    let page = state
        .order_queries
        .list_orders(&caller.tenant, &caller.visibility()?, &filter)
        .await?;
    Ok(json_answer(
        StatusCode::OK,
        false,
        order_api::OrderList {
            orders: page.orders.into_iter().collect(),
            next: page.next.map(|c| state.keys.cursors().seal(&c.encode())),
        },
    ))
}

/// Cancels the order and restores its stock, once.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    tag = "orders",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Cancelled (or already cancelled: unchanged)", body = order_api::Order),
        (status = 404, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not cancellable in its status by this caller", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    let context = caller.command_context(request_id)?;
    transition_answer(
        "cancel",
        state.orders.cancel(&context, id, Utc::now()).await,
    )
}

/// Records the payment (staff).
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/pay",
    tag = "orders",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Paid (or already paid: unchanged)", body = order_api::Order),
        (status = 403, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn pay_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let context = caller.command_context(request_id)?;
    transition_answer(
        "pay",
        state.orders.mark_paid(&context, id, Utc::now()).await,
    )
}

/// Records the shipment (staff).
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/ship",
    tag = "orders",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "Shipped (or already shipped: unchanged)", body = order_api::Order),
        (status = 403, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 409, body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn ship_order(
    State(state): State<AppState>,
    caller: Caller,
    OrderIdPath(id): OrderIdPath,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    caller.require_staff()?;
    let context = caller.command_context(request_id)?;
    transition_answer("ship", state.orders.ship(&context, id, Utc::now()).await)
}

fn transition_answer(
    command: &'static str,
    result: Result<OrderTransition, OrderCommandError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(transition) => {
            metrics::command(
                command,
                if transition.changed {
                    "changed"
                } else {
                    "unchanged"
                },
            );
            Ok(json_answer(StatusCode::OK, false, transition.order))
        }
        Err(err) => {
            let answer = match err {
                OrderCommandError::NotFound => ApiError::not_found("order"),
                OrderCommandError::Rejected(OrderError::InvalidTransition { from, action }) => {
                    let mut answer = ApiError::new(
                        ProblemKind::InvalidTransition,
                        format!("cannot {action} an order that is {from}"),
                    );
                    answer.problem.extensions.current_status = Some(from.to_string());
                    answer
                }
                OrderCommandError::Rejected(other) => ApiError::internal(&other),
                OrderCommandError::Store(store) => store.into(),
            };
            metrics::command(
                command,
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
