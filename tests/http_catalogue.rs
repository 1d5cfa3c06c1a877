//! Products and stock over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem};
use store_orders_tests::TestApp;

async fn put_product(app: &TestApp, token: &str, sku: &str, body: Value) -> Response {
    app.request(Method::PUT, &format!("/v1/products/{sku}"), token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn stock(app: &TestApp, token: &str, sku: &str, key: &str, body: Value) -> Response {
    app.request(Method::POST, &format!("/v1/products/{sku}/stock"), token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn staff_define_and_redefine_products_and_everyone_in_the_tenant_reads_them() {
    let app = TestApp::spawn().await;
    let staff = app.staff("acme");
    let product = json(
        put_product(
            &app,
            &staff,
            "DOG-FOOD-3KG",
            json!({"name": "Dog food", "unit_price": 125_000, "currency": "PYG"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(product["sku"], "DOG-FOOD-3KG");
    assert_eq!(product["on_hand"], 0);
    let repriced = json(
        put_product(
            &app,
            &staff,
            "DOG-FOOD-3KG",
            json!({"name": "Dog food", "unit_price": 130_000, "currency": "PYG"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(repriced["unit_price"], 130_000);
    let read = json(
        app.get("/v1/products/DOG-FOOD-3KG", &app.customer("acme", "c"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, repriced);
    problem(
        app.get("/v1/products/DOG-FOOD-3KG", &app.staff("zeta"))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        app.get("/v1/products/NOPE", &staff).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        app.get("/v1/products/bad%20sku", &staff).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn invalid_product_definitions_answer_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let staff = app.staff("acme");
    let long_sku = "S".repeat(65);
    let cases = [
        (
            "A",
            json!({"name": "", "unit_price": 1, "currency": "PYG"}),
            "name",
        ),
        (
            "A",
            json!({"name": "x", "unit_price": -1, "currency": "PYG"}),
            "unit_price",
        ),
        (
            "A",
            json!({"name": "x", "unit_price": 1, "currency": "EUD"}),
            "currency",
        ),
        (
            "A",
            json!({"name": "x", "unit_price": 1.5, "currency": "PYG"}),
            "unit_price",
        ),
        ("A", json!({"name": "x", "currency": "PYG"}), ""),
        (
            "bad%20sku",
            json!({"name": "x", "unit_price": 1, "currency": "PYG"}),
            "sku",
        ),
        (
            long_sku.as_str(),
            json!({"name": "x", "unit_price": 1, "currency": "PYG"}),
            "sku",
        ),
    ];
    for (sku, body, field) in cases {
        let p = problem(
            put_product(&app, &staff, sku, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        )
        .await;
        if !field.is_empty() {
            assert_eq!(p["field"], field, "{body}");
        }
    }
    let list = json(app.get("/v1/products", &staff).await, StatusCode::OK).await;
    assert_eq!(list["products"], json!([]));
}

#[tokio::test]
async fn a_stock_movement_is_booked_once_per_key_and_a_replay_changes_nothing() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 100, 0).await;
    let staff = app.staff("acme");
    let booked = stock(
        &app,
        &staff,
        "A",
        "receipt-1",
        json!({"delta": 50, "reason": "received"}),
    )
    .await;
    assert!(booked.headers().get("idempotent-replayed").is_none());
    let booked = json(booked, StatusCode::CREATED).await;
    assert_eq!(booked["on_hand"], 50);
    let replay = stock(
        &app,
        &staff,
        "A",
        "receipt-1",
        json!({"delta": 50, "reason": "received"}),
    )
    .await;
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(json(replay, StatusCode::OK).await["on_hand"], 50);
    problem(
        stock(
            &app,
            &staff,
            "A",
            "receipt-1",
            json!({"delta": 51, "reason": "received"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    let p = problem(
        stock(
            &app,
            &staff,
            "A",
            "shrink",
            json!({"delta": -51, "reason": "adjustment"}),
        )
        .await,
        StatusCode::CONFLICT,
        "stock-below-zero",
    )
    .await;
    assert_eq!(
        (
            p["sku"].as_str(),
            p["requested"].as_i64(),
            p["available"].as_i64()
        ),
        (Some("A"), Some(51), Some(50))
    );
    let counted = json(
        stock(
            &app,
            &staff,
            "A",
            "count-1",
            json!({"delta": -50, "reason": "count"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(counted["on_hand"], 0);
    problem(
        stock(
            &app,
            &staff,
            "NOPE",
            "r",
            json!({"delta": 5, "reason": "received"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        stock(
            &app,
            &staff,
            "A",
            "r2",
            json!({"delta": -5, "reason": "received"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
    )
    .await;
    problem(
        stock(
            &app,
            &staff,
            "A",
            "r3",
            json!({"delta": 0, "reason": "received"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
    )
    .await;
    problem(
        stock(
            &app,
            &staff,
            "A",
            "r4",
            json!({"delta": 5, "reason": "stolen"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-body",
    )
    .await;
    problem(
        stock(
            &app,
            &app.customer("acme", "c"),
            "A",
            "r5",
            json!({"delta": 5, "reason": "received"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let no_key = app
        .request(Method::POST, "/v1/products/A/stock", &staff)
        .json(&json!({"delta": 5, "reason": "received"}))
        .send()
        .await
        .unwrap();
    problem(no_key, StatusCode::BAD_REQUEST, "idempotency-key-missing").await;
    assert_eq!(app.on_hand("acme", "A").await, 0);
}

#[tokio::test]
async fn products_are_listed_in_sku_order_page_by_page() {
    let app = TestApp::spawn().await;
    for sku in ["C", "A", "B"] {
        app.product("acme", sku, 1, 1).await;
    }
    let token = app.customer("acme", "c");
    let first = json(
        app.get("/v1/products?limit=2", &token).await,
        StatusCode::OK,
    )
    .await;
    let skus: Vec<_> = first["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(skus, ["A", "B"]);
    let next = first["next"].as_str().unwrap();
    let rest = json(
        app.get(&format!("/v1/products?limit=2&after={next}"), &token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rest["products"][0]["sku"], "C");
    assert!(rest["next"].is_null());
}
