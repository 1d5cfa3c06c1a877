//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the `order-api` types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "store-orders",
        version = "1",
        description = "Checkout that is safe to retry: every checkout carries an Idempotency-Key, and (tenant, key) is the order's identity. Errors are RFC 9457 problem documents; money is integer minor units; times are RFC 3339 UTC."
    ),
    paths(
        routes::checkout::checkout,
        routes::orders::get_order,
        routes::orders::list_orders,
        routes::orders::cancel_order,
        routes::orders::pay_order,
        routes::orders::ship_order,
        routes::products::define_product,
        routes::products::adjust_stock,
        routes::products::get_product,
        routes::products::list_products,
        routes::operations::healthz,
        routes::operations::readyz,
        routes::operations::metrics,
        routes::operations::openapi,
    ),
    components(schemas(
        order_api::CheckoutRequest,
        order_api::CheckoutLine,
        order_api::Order,
        order_api::OrderLine,
        order_api::OrderStatus,
        order_api::OrderList,
        order_api::ProductDefinition,
        order_api::StockAdjustmentRequest,
        order_api::StockReason,
        order_api::Product,
        order_api::ProductList,
        order_api::Readiness,
        order_api::ProjectorStatus,
        order_api::Problem,
        order_api::ProblemExtensions,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "checkout", description = "Placing orders, idempotently"),
        (name = "orders", description = "Reading orders and moving them along"),
        (name = "catalogue", description = "Products and stock (writes: staff)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// `Authorization: Bearer <JWT>` (HS256; claims sub, tenant, role, exp).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
