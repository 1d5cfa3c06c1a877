//! Settling a checkout: `GET /v1/checkouts/{key}` (what became of a key)
//! and `POST /v1/checkouts/{key}/abandon` (settle it for good), each also
//! with the key as `?key=` for keys that cannot travel as a path segment
//! (`.`, `..`).
//!
//! Why: a client whose checkout got no answer must learn the outcome for
//! certain before it lets the person change the cart or makes a new key.
//! The GET is safe (a 404 is not an outcome: a request still in flight may
//! yet place the order); the abandon is the outcome itself: the order, or a
//! recorded abandonment after which no checkout with the key stores
//! anything (`order_domain::order::abandonment`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use order_api::ProblemKind;
use order_domain::IdempotencyKey;
use order_store::AbandonError;

use super::json_answer;
use crate::auth::Caller;
use crate::extract::{QueryPairs, RequestId};
use crate::metrics;
use crate::problem::ApiError;
use crate::state::AppState;

/// A key in the path: the path segment, percent-decoded, is the key as the
/// service compares it (no RFC 8941 unquoting: that is the header's form).
fn key_from_path(raw: &str) -> Result<IdempotencyKey, ApiError> {
    IdempotencyKey::try_from(raw).map_err(|e| {
        ApiError::new(
            ProblemKind::IdempotencyKeyInvalid,
            format!("the Idempotency-Key in the path {}", e.reason),
        )
    })
}

/// The key given as `?key=` (form-encoded: send `+` as `%2B`).
fn key_from_query(query: &QueryPairs) -> Result<IdempotencyKey, ApiError> {
    query.only(&["key"])?;
    let raw = query.get("key")?.ok_or_else(|| {
        ApiError::new(
            ProblemKind::IdempotencyKeyMissing,
            "give the Idempotency-Key as ?key=, percent-encoded",
        )
    })?;
    IdempotencyKey::try_from(raw).map_err(|e| {
        ApiError::new(
            ProblemKind::IdempotencyKeyInvalid,
            format!("the Idempotency-Key in ?key= {}", e.reason),
        )
        .with_field("key")
    })
}

fn not_found() -> ApiError {
    ApiError::new(
        ProblemKind::CheckoutNotFound,
        "nothing is recorded for this Idempotency-Key: a checkout still in flight may yet place \
         it; to settle it for good, abandon it",
    )
}

/// What became of the checkout made with `{key}`.
#[utoipa::path(
    get,
    path = "/v1/checkouts/{key}",
    tag = "checkout",
    params(("key" = String, Path,
            description = "The Idempotency-Key, percent-encoded as one path segment (for `.` and `..` use `GET /v1/checkouts?key=`)")),
    responses(
        (status = 200, description = "Placed (with its order) or abandoned", body = order_api::CheckoutStatus),
        (status = 400, description = "The key is invalid", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Nothing recorded for the key (or nothing the caller may see): not an outcome, a checkout in flight may yet place it", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    find(&state, &caller, &key_from_path(&key)?).await
}

/// As `GET /v1/checkouts/{key}`, with the key in the query: any key.
#[utoipa::path(
    get,
    path = "/v1/checkouts",
    tag = "checkout",
    params(("key" = String, Query, description = "The Idempotency-Key (form-encoded)")),
    responses(
        (status = 200, description = "Placed (with its order) or abandoned", body = order_api::CheckoutStatus),
        (status = 400, description = "The key is missing or invalid", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Nothing recorded for the key (or nothing the caller may see)", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_checkout_by_query(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    find(&state, &caller, &key_from_query(&query)?).await
}

/// What became of the checkout made with the key `abandon`: as `GET
/// /v1/checkouts/{key}` (this path is shared with the query form of the
/// abandon, `POST /v1/checkouts/abandon?key=`).
#[utoipa::path(
    get,
    path = "/v1/checkouts/abandon",
    tag = "checkout",
    responses(
        (status = 200, description = "Placed (with its order) or abandoned", body = order_api::CheckoutStatus),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Nothing recorded for the key `abandon` (or nothing the caller may see)", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_checkout_named_abandon(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    find(&state, &caller, &key_from_path("abandon")?).await
}

async fn find(
    state: &AppState,
    caller: &Caller,
    key: &IdempotencyKey,
) -> Result<Response, ApiError> {
    let checkout = state
        .order_queries
        .find_checkout(&caller.tenant, key, &caller.visibility()?)
        .await?
        .ok_or_else(not_found)?;
    Ok(json_answer(StatusCode::OK, false, checkout))
}

/// Settles the checkout made with `{key}` for good.
#[utoipa::path(
    post,
    path = "/v1/checkouts/{key}/abandon",
    tag = "checkout",
    params(("key" = String, Path,
            description = "The Idempotency-Key, percent-encoded as one path segment (for `.` and `..` use `POST /v1/checkouts/abandon?key=`)")),
    responses(
        (status = 200, description = "`placed` with the order (nothing changed), or `abandoned`: no checkout with the key will ever store anything", body = order_api::CheckoutStatus),
        (status = 400, description = "The key is invalid", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The key is another customer's", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many abandonments by this customer; retry after `Retry-After` seconds", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded; retry", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn abandon_checkout(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    abandon(&state, &caller, &key_from_path(&key)?, request_id).await
}

/// As `POST /v1/checkouts/{key}/abandon`, with the key in the query.
#[utoipa::path(
    post,
    path = "/v1/checkouts/abandon",
    tag = "checkout",
    params(("key" = String, Query, description = "The Idempotency-Key (form-encoded)")),
    responses(
        (status = 200, description = "`placed` with the order (nothing changed), or `abandoned`", body = order_api::CheckoutStatus),
        (status = 400, description = "The key is missing or invalid", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 401, body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "The key is another customer's", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many abandonments by this customer", body = order_api::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded; retry", body = order_api::ProblemDocument, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn abandon_checkout_by_query(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryPairs,
    RequestId(request_id): RequestId,
) -> Result<Response, ApiError> {
    abandon(&state, &caller, &key_from_query(&query)?, request_id).await
}

async fn abandon(
    state: &AppState,
    caller: &Caller,
    key: &IdempotencyKey,
    request_id: Option<String>,
) -> Result<Response, ApiError> {
    let context = caller.command_context(request_id)?;
    match state
        .orders
        .abandon_checkout(&context, key, Utc::now())
        .await
    {
        Ok(settled) => {
            metrics::command(
                "abandon",
                if settled.abandoned_now {
                    "changed"
                } else {
                    "unchanged"
                },
            );
            Ok(json_answer(StatusCode::OK, false, settled.checkout))
        }
        Err(err) => {
            let answer = match err {
                AbandonError::NotFound => not_found(),
                AbandonError::Limited { retry_after, .. } => {
                    let mut answer = ApiError::new(ProblemKind::TooManyRequests, err.to_string());
                    answer.retry_after = Some(u32::try_from(retry_after.as_secs()).unwrap_or(60));
                    answer
                }
                AbandonError::Store(store) => store.into(),
            };
            metrics::command(
                "abandon",
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
