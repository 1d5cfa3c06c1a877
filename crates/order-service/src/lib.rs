//! The store-orders HTTP service: the contract of `docs/API.md`
//! over `order-store`'s commands and queries.
//!
//! [`app`] builds the router from an [`AppState`] (tests call it with
//! `oneshot`, no socket); [`serve`] runs it on a listener, with bounds on
//! slow and idle connections, until the shutdown future resolves, then
//! drains in-flight requests.
//!
//! # Layout
//! - `routes/`: one module per resource (checkout, settling a checkout,
//!   orders, products, operations), each handler annotated for the OpenAPI
//!   document; and
//!   `shop.rs`, the checkout page (`../shop/`, embedded).
//! - `auth.rs`: HS256 JWTs; the tenant and role come from the token only.
//! - `extract.rs`: extractors whose failures name the offending field.
//! - `problem.rs`: every error answer is an RFC 9457 problem.
//! - `server.rs`: accepting connections: header and idle timeouts, a
//!   connection limit, graceful drain; `connection.rs`: `Connection:
//!   close` on an answer given before the request's body was read.
//! - `cursor.rs`: page cursors sealed with an HMAC: only our own come back.
//! - `telemetry.rs`, `metrics.rs`: request ids, spans, Prometheus.
//! - `openapi.rs`: the generated OpenAPI 3.1 document, refined to what the
//!   service enforces, and its route `/openapi.json`.
//! - `config.rs`: the typed configuration, read once at start.
//! - `seed.rs`: the demo tenant.
//! - `cli.rs`: the `order-service` command line (serve, relay, migrate,
//!   token, seed-demo); `main.rs` runs it. The relay itself is the
//!   `order-relay` crate.

pub mod auth;
pub mod cli;
pub mod config;
mod connection;
pub mod cursor;
pub mod extract;
pub mod metrics;
mod openapi;
pub mod problem;
pub mod routes;
pub mod seed;
mod server;
pub mod state;
pub mod telemetry;

use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post, put};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{Claims, JwtKeys, Role};
pub use openapi::ApiDoc;
pub use state::AppState;

/// Request bodies over this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface, with its middleware. `request_timeout` bounds a
/// request's handling (503 problem with `Retry-After` when exceeded).
pub fn app(state: AppState, request_timeout: Duration) -> Router {
    let api = Router::new()
        .route("/v1/checkout", post(routes::checkout::checkout))
        .route(
            "/v1/checkouts",
            get(routes::settling::get_checkout_by_query),
        )
        .route(
            "/v1/checkouts/abandon",
            post(routes::settling::abandon_checkout_by_query)
                .get(routes::settling::get_checkout_named_abandon),
        )
        .route("/v1/checkouts/{key}", get(routes::settling::get_checkout))
        .route(
            "/v1/checkouts/{key}/abandon",
            post(routes::settling::abandon_checkout),
        )
        .route("/v1/orders", get(routes::orders::list_orders))
        .route("/v1/orders/{id}", get(routes::orders::get_order))
        .route("/v1/orders/{id}/cancel", post(routes::orders::cancel_order))
        .route("/v1/orders/{id}/pay", post(routes::orders::pay_order))
        .route("/v1/orders/{id}/ship", post(routes::orders::ship_order))
        .route("/v1/products", get(routes::products::list_products))
        .route(
            "/v1/products/{sku}",
            put(routes::products::define_product).get(routes::products::get_product),
        )
        .route(
            "/v1/products/{sku}/stock",
            post(routes::products::adjust_stock),
        )
        .route("/healthz", get(routes::operations::healthz))
        .route("/readyz", get(routes::operations::readyz))
        .route("/metrics", get(routes::operations::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/shop", get(routes::shop::page))
        .route("/shop/app.js", get(routes::shop::script))
        .route("/shop/app.css", get(routes::shop::style))
        .with_state(state);
    with_middleware(api, request_timeout)
}

/// The service's middleware around `routes`: request ids, traces, metrics,
/// problem documents for every error, panics caught, the request timeout
/// and the body limit. Public so that `order-bench`'s CRUD baseline pays
/// exactly what the service pays around its handlers.
pub fn with_middleware(routes: Router, request_timeout: Duration) -> Router {
    let routes = routes
        .fallback(|| async { StatusCode::NOT_FOUND })
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED });
    // Outermost first: every response, whatever produced it, carries the
    // request id, is traced and counted, and leaves as a problem if it is an
    // error.
    routes.layer(
        ServiceBuilder::new()
            .layer(middleware::from_fn(connection::close_when_body_unread))
            .layer(middleware::from_fn(telemetry::request_id))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(telemetry::request_span)
                    .on_request(())
                    .on_response(telemetry::record_response)
                    .on_failure(()),
            )
            .layer(middleware::from_fn(metrics::track_requests))
            .layer(middleware::from_fn(problem::problem_responses))
            .layer(CatchPanicLayer::custom(problem::panic_response))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                request_timeout,
            ))
            // Enforced by the body extractors: a bigger body is refused with
            // 413 before it is buffered.
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

pub use server::{serve, ServeOptions};
