//! The OpenAPI 3.1 document: generated from the handlers' annotations and
//! the `order-api` types, then completed here with what the annotations
//! cannot say, so that the document describes what the service does (an
//! external suite, Schemathesis, checks it in CI: `scripts/openapi-check`).
//!
//! [`document`] adds, for every operation:
//! - the answers the middleware and extractors give whatever the handler:
//!   401 on authenticated routes; 400, 413, 415 and 422 where a body is
//!   read; 400 where a header or query parameter is parsed; 503 wherever the
//!   database is reached;
//! - the bounds the server enforces that the Rust types cannot carry: the
//!   Idempotency-Key and SKU patterns, `limit` 1 to 100, the sealed `after`
//!   cursor, ISO 4217 currencies, and a stock receipt's positive delta;
//! - links, so a client (or a stateful test) can go from a checkout to the
//!   order, and on to cancel, pay or ship it; from a product to its stock.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
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
        routes::settling::get_checkout,
        routes::settling::get_checkout_by_query,
        routes::settling::abandon_checkout,
        routes::settling::abandon_checkout_by_query,
        routes::settling::get_checkout_named_abandon,
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
        openapi_json,
    ),
    components(schemas(
        order_api::CheckoutRequest,
        order_api::CheckoutLine,
        order_api::CheckoutStatus,
        order_api::CheckoutState,
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
        order_api::CommitOrderStatus,
        order_api::NodeCommitOrderStatus,
        order_api::ProblemDocument,
        order_api::ProblemExtensions,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "checkout", description = "Placing orders, idempotently, and settling a checkout whose answer was lost"),
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

/// The complete document, built once per process.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
        refine(&mut doc);
        doc
    })
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Response {
    Json(document()).into_response()
}

/// Routes that never touch the database or a token.
const PLAIN_ROUTES: [&str; 3] = ["/healthz", "/metrics", "/openapi.json"];

fn refine(doc: &mut Value) {
    refine_schemas(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, operation) in item.iter_mut() {
            if PLAIN_ROUTES.contains(&path.as_str()) {
                continue;
            }
            refine_operation(path, operation);
        }
    }
    add_links(doc);
}

/// A problem answer, for `responses`.
fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn refine_operation(path: &str, operation: &mut Value) {
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let has_body = operation.get("requestBody").is_some();
    let mut parses_parameters = false;
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut() {
            parses_parameters |= matches!(parameter["in"].as_str(), Some("query" | "header"));
            refine_parameter(parameter);
        }
    }
    let mut added: Vec<(&str, Value)> = Vec::new();
    if secured {
        added.push((
            "401",
            problem("Missing, malformed, expired or wrongly signed token, or a claim the service cannot use"),
        ));
    }
    if has_body || parses_parameters {
        added.push((
            "400",
            problem("Malformed JSON, or an invalid header or query parameter (named in `field`)"),
        ));
    }
    if has_body {
        added.push(("413", problem("Request body over 64 KiB")));
        added.push(("415", problem("Request body not sent as application/json")));
        added.push((
            "422",
            problem("A field of the body outside its bounds (named in `field`)"),
        ));
    }
    if path != "/readyz" {
        added.push((
            "503",
            problem("Overloaded, or the database unavailable: retry shortly (with the same Idempotency-Key)"),
        ));
    }
    if let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    {
        for (status, answer) in added {
            responses.entry(status.to_owned()).or_insert(answer);
        }
    }
}

/// Bounds of path, header and query parameters that the server enforces.
fn refine_parameter(parameter: &mut Value) {
    let schema = match (parameter["in"].as_str(), parameter["name"].as_str()) {
        (Some("header"), Some("Idempotency-Key")) => json!({
            "type": "string", "minLength": 1, "maxLength": 255,
            "pattern": order_api::IDEMPOTENCY_KEY_PATTERN,
            "example": "7f2b9a3e-5c1d-4e8f-9a6b-1c2d3e4f5a6b"
        }),
        (Some("header"), Some("Order-Channel")) => json!({
            "type": "string", "enum": ["api", "shop"], "default": "api"
        }),
        (Some("path" | "query"), Some("key")) => json!({
            "type": "string", "minLength": 1, "maxLength": 255,
            "pattern": order_api::IDEMPOTENCY_KEY_PATTERN,
            "example": "7f2b9a3e-5c1d-4e8f-9a6b-1c2d3e4f5a6b"
        }),
        (Some("path"), Some("sku")) => json!({
            "type": "string", "minLength": 1, "maxLength": 64,
            "pattern": order_api::SKU_PATTERN, "example": "DOG-FOOD-3KG"
        }),
        (Some("query"), Some("limit")) => json!({
            "type": "integer", "minimum": 1, "maximum": 100, "default": 20
        }),
        (Some("query"), Some("after")) => json!({
            "type": "string", "minLength": 24, "maxLength": crate::cursor::MAX_CURSOR_LEN,
            "pattern": "^[A-Za-z0-9_-]*\\.[A-Za-z0-9_-]{22}$",
            "description": "Opaque: the `next` of the previous page, unchanged (sealed by the service; any other value is a 400)"
        }),
        _ => return,
    };
    parameter["schema"] = schema;
}

fn refine_schemas(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // Every ISO 4217 code the service knows.
    if let Some(currency) = schemas
        .get_mut("ProductDefinition")
        .and_then(|s| s.pointer_mut("/properties/currency"))
    {
        let codes: Vec<&str> = order_domain::Currency::codes().collect();
        currency["enum"] = json!(codes);
    }
    // Not zero, at most a million either way; positive for a receipt.
    let delta = |minimum: i64, maximum: i64| json!({"type": "integer", "format": "int64", "minimum": minimum, "maximum": maximum});
    let max = order_domain::StockDelta::MAX_ABS;
    schemas.insert(
        "StockAdjustmentRequest".to_owned(),
        json!({
            "description": "`POST /v1/products/{sku}/stock`: units to add (positive) or remove (negative); a receipt only adds.",
            "oneOf": [
                {
                    "type": "object",
                    "required": ["delta", "reason"],
                    "properties": {
                        "delta": delta(1, max),
                        "reason": {"type": "string", "enum": ["received"]}
                    }
                },
                {
                    "type": "object",
                    "required": ["delta", "reason"],
                    "properties": {
                        "delta": {"oneOf": [delta(-max, -1), delta(1, max)]},
                        "reason": {"type": "string", "enum": ["adjustment", "count"]}
                    }
                }
            ],
            "example": {"delta": 50, "reason": "received"}
        }),
    );
}

/// Links from a checkout to its order, and from a product to its stock.
fn add_links(doc: &mut Value) {
    let order_id = json!({"id": "$response.body#/id"});
    let to_order: Map<String, Value> = [
        ("GetOrder", "get_order"),
        ("CancelOrder", "cancel_order"),
        ("PayOrder", "pay_order"),
        ("ShipOrder", "ship_order"),
    ]
    .into_iter()
    .map(|(name, operation)| {
        (
            name.to_owned(),
            json!({"operationId": operation, "parameters": order_id}),
        )
    })
    .collect();
    for (path, method, statuses) in [
        ("/v1/checkout", "post", &["200", "201"][..]),
        ("/v1/orders/{id}", "get", &["200"][..]),
        ("/v1/orders/{id}/pay", "post", &["200"][..]),
    ] {
        for status in statuses {
            if let Some(response) = doc.pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                path.replace('~', "~0").replace('/', "~1")
            )) {
                response["links"] = Value::Object(to_order.clone());
            }
        }
    }
    // From a checkout to what became of its key (the key as the service
    // compares it: the order's, not the header's raw value, which may be in
    // RFC 8941 form).
    let key = json!({"key": "$response.body#/idempotency_key"});
    for status in ["200", "201"] {
        if let Some(links) = doc
            .pointer_mut(&format!(
                "/paths/~1v1~1checkout/post/responses/{status}/links"
            ))
            .and_then(Value::as_object_mut)
        {
            links.insert(
                "GetCheckout".to_owned(),
                json!({"operationId": "get_checkout", "parameters": key}),
            );
            links.insert(
                "AbandonCheckout".to_owned(),
                json!({"operationId": "abandon_checkout", "parameters": key}),
            );
        }
    }
    let sku = json!({"sku": "$request.path.sku"});
    if let Some(response) = doc.pointer_mut("/paths/~1v1~1products~1{sku}/put/responses/200") {
        response["links"] = json!({
            "GetProduct": {"operationId": "get_product", "parameters": sku},
            "AdjustStock": {"operationId": "adjust_stock", "parameters": sku}
        });
    }
    if let Some(response) = doc.pointer_mut("/paths/~1v1~1orders/get/responses/200") {
        response["links"] = json!({
            "NextPage": {"operationId": "list_orders", "parameters": {"after": "$response.body#/next"}}
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_operation_documents_its_common_answers_and_bounds() {
        let doc = document();
        let checkout = &doc["paths"]["/v1/checkout"]["post"];
        for status in [
            "200", "201", "400", "401", "409", "413", "415", "422", "503",
        ] {
            assert!(
                checkout["responses"][status].is_object(),
                "checkout {status}"
            );
        }
        assert!(checkout["responses"]["201"]["links"]["GetOrder"].is_object());
        let key = &checkout["parameters"][0]["schema"];
        assert_eq!(key["maxLength"], 255);
        let channel = &checkout["parameters"][1];
        assert_eq!(channel["name"], "Order-Channel");
        assert_eq!(channel["required"], false);
        assert_eq!(
            channel["schema"]["enum"],
            json!(["api", "shop"]),
            "{channel}"
        );
        let problem = &doc["components"]["schemas"]["Problem"];
        let type_format = problem["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|part| part.pointer("/properties/type/format"));
        assert_eq!(type_format, Some(&json!("uri-reference")), "{problem}");
        let currency = &doc["components"]["schemas"]["ProductDefinition"]["properties"]["currency"];
        assert!(currency["enum"]
            .as_array()
            .is_some_and(|codes| codes.iter().any(|c| c == "PYG") && codes.len() > 100));
        let list = &doc["paths"]["/v1/orders"]["get"];
        assert!(list["responses"]["401"].is_object() && list["responses"]["503"].is_object());
        assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    }
}
