//! Orders over HTTP: reading, listing, the lifecycle, and isolation between
//! tenants and customers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem};
use store_orders_tests::TestApp;

async fn shop_with_order() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    let body = json!({"lines": [{"sku": "A", "quantity": 2}]});
    let order = json(
        app.checkout(&app.customer("acme", "cust-1"), "k-1", body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = order["id"].as_str().unwrap().to_owned();
    (app, id)
}

#[tokio::test]
async fn staff_move_an_order_from_placed_to_paid_to_shipped_and_repeats_answer_unchanged() {
    let (app, id) = shop_with_order().await;
    let staff = app.staff("acme");
    let paid = json(
        app.post(&format!("/v1/orders/{id}/pay"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(paid["status"], "paid");
    let again = json(
        app.post(&format!("/v1/orders/{id}/pay"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, paid, "repeating a transition answers 200 unchanged");
    let shipped = json(
        app.post(&format!("/v1/orders/{id}/ship"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shipped["status"], "shipped");
    let again = json(
        app.post(&format!("/v1/orders/{id}/ship"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, shipped);
    let p = problem(
        app.post(&format!("/v1/orders/{id}/cancel"), &staff).await,
        StatusCode::CONFLICT,
        "invalid-transition",
    )
    .await;
    assert_eq!(p["current_status"], "shipped");
    assert_eq!(app.on_hand("acme", "A").await, 8);
}

#[tokio::test]
async fn shipping_an_unpaid_order_is_an_invalid_transition() {
    let (app, id) = shop_with_order().await;
    problem(
        app.post(&format!("/v1/orders/{id}/ship"), &app.staff("acme"))
            .await,
        StatusCode::CONFLICT,
        "invalid-transition",
    )
    .await;
}

#[tokio::test]
async fn a_customer_cancels_their_placed_order_once_and_gets_the_stock_back_once() {
    let (app, id) = shop_with_order().await;
    let customer = app.customer("acme", "cust-1");
    let cancelled = json(
        app.post(&format!("/v1/orders/{id}/cancel"), &customer)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(app.on_hand("acme", "A").await, 10);
    let again = json(
        app.post(&format!("/v1/orders/{id}/cancel"), &customer)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again, cancelled);
    assert_eq!(app.on_hand("acme", "A").await, 10, "restored once");
    problem(
        app.post(&format!("/v1/orders/{id}/pay"), &app.staff("acme"))
            .await,
        StatusCode::CONFLICT,
        "invalid-transition",
    )
    .await;
}

#[tokio::test]
async fn a_customer_may_not_cancel_a_paid_order_but_staff_may() {
    let (app, id) = shop_with_order().await;
    json(
        app.post(&format!("/v1/orders/{id}/pay"), &app.staff("acme"))
            .await,
        StatusCode::OK,
    )
    .await;
    problem(
        app.post(
            &format!("/v1/orders/{id}/cancel"),
            &app.customer("acme", "cust-1"),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid-transition",
    )
    .await;
    let cancelled = json(
        app.post(&format!("/v1/orders/{id}/cancel"), &app.staff("acme"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(app.on_hand("acme", "A").await, 10);
}

#[tokio::test]
async fn staff_routes_answer_403_to_customers() {
    let (app, id) = shop_with_order().await;
    let customer = app.customer("acme", "cust-1");
    for action in ["pay", "ship"] {
        problem(
            app.post(&format!("/v1/orders/{id}/{action}"), &customer)
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    let response = app
        .request(reqwest::Method::PUT, "/v1/products/A", &customer)
        .json(&json!({"name": "Cheap", "unit_price": 1, "currency": "PYG"}))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let order = json(
        app.get(&format!("/v1/orders/{id}"), &customer).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(order["status"], "placed");
}

#[tokio::test]
async fn other_tenants_and_other_customers_get_404_exactly_as_if_the_order_did_not_exist() {
    let (app, id) = shop_with_order().await;
    let missing = uuid::Uuid::new_v4();
    let absent = problem(
        app.get(&format!("/v1/orders/{missing}"), &app.staff("acme"))
            .await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    for token in [
        app.staff("zeta"),
        app.customer("zeta", "cust-1"),
        app.customer("acme", "cust-2"),
    ] {
        let hidden = problem(
            app.get(&format!("/v1/orders/{id}"), &token).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
        assert_eq!(
            (hidden["title"].clone(), hidden["detail"].clone()),
            (absent["title"].clone(), absent["detail"].clone())
        );
        problem(
            app.post(&format!("/v1/orders/{id}/cancel"), &token).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    for action in ["pay", "ship"] {
        problem(
            app.post(&format!("/v1/orders/{id}/{action}"), &app.staff("zeta"))
                .await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    for bad in ["not-a-uuid", "..%2F..%2Fetc%2Fpasswd", "1%27%20OR%201%3D1"] {
        problem(
            app.get(&format!("/v1/orders/{bad}"), &app.staff("acme"))
                .await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    json(
        app.get(&format!("/v1/orders/{id}"), &app.staff("acme"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.on_hand("acme", "A").await, 8, "nothing was cancelled");
}

fn keys_of(list: &Value) -> Vec<String> {
    list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["idempotency_key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn orders_are_listed_newest_first_in_pages_with_a_status_filter() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 100).await;
    for i in 0..5 {
        let who = if i == 2 { "cust-2" } else { "cust-1" };
        let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
        json(
            app.checkout(&app.customer("acme", who), &format!("k-{i}"), body)
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let staff = app.staff("acme");
    let page1 = json(app.get("/v1/orders?limit=2", &staff).await, StatusCode::OK).await;
    assert_eq!(keys_of(&page1), ["k-4", "k-3"]);
    let next = page1["next"].as_str().unwrap();
    let page2 = json(
        app.get(&format!("/v1/orders?limit=2&after={next}"), &staff)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys_of(&page2), ["k-2", "k-1"]);
    let next = page2["next"].as_str().unwrap();
    let page3 = json(
        app.get(&format!("/v1/orders?limit=2&after={next}"), &staff)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys_of(&page3), ["k-0"]);
    assert!(page3["next"].is_null());
    let all = json(app.get("/v1/orders", &staff).await, StatusCode::OK).await;
    assert_eq!(
        all["orders"].as_array().unwrap().len(),
        5,
        "default limit 20"
    );
    let own = json(
        app.get("/v1/orders", &app.customer("acme", "cust-1")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys_of(&own), ["k-4", "k-3", "k-1", "k-0"]);
    let id = all["orders"][0]["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/orders/{id}/pay"), &staff).await,
        StatusCode::OK,
    )
    .await;
    let paid = json(
        app.get("/v1/orders?status=paid", &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys_of(&paid), ["k-4"]);
    let none = json(
        app.get("/v1/orders", &app.staff("zeta")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(keys_of(&none), Vec::<String>::new());
    for bad in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "status=lost",
        "after=garbage",
        "limit=1&limit=2",
        "colour=red",
    ] {
        problem(
            app.get(&format!("/v1/orders?{bad}"), &staff).await,
            StatusCode::BAD_REQUEST,
            "invalid-query",
        )
        .await;
    }
}
