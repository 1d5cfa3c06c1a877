//! One module per resource of the contract.

pub mod checkout;
pub mod operations;
pub mod orders;
pub mod products;
pub mod settling;
pub mod shop;

use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// A JSON answer with `Idempotent-Replayed: true` when it replays an
/// earlier request.
pub fn json_answer<T: Serialize>(
    status: axum::http::StatusCode,
    replayed: bool,
    body: T,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(
            HeaderName::from_static(order_api::IDEMPOTENT_REPLAYED),
            HeaderValue::from_static("true"),
        );
    }
    response
}
