//! Settling a checkout (`GET /v1/checkouts/{key}`, `POST
//! /v1/checkouts/{key}/abandon`), row by row of the contract's section:
//! outcomes, ownership, the `?key=` form, the orders routes for an
//! abandoned key, and the bound on abandonments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::join_all;
use order_store::AbandonmentLimit;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem, AppOptions};
use store_orders_tests::TestApp;

async fn shop() -> TestApp {
    shop_with(AppOptions::default()).await
}

async fn shop_with(options: AppOptions) -> TestApp {
    let app = TestApp::spawn_with(options).await;
    app.product("acme", "DOG-FOOD-3KG", 125_000, 10).await;
    app
}

fn dog_food(quantity: i64) -> Value {
    json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": quantity}]})
}

/// `key` as one path segment.
fn segment(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn status_of(app: &TestApp, token: &str, key: &str) -> reqwest::Response {
    app.get(&format!("/v1/checkouts/{}", segment(key)), token)
        .await
}

async fn abandon(app: &TestApp, token: &str, key: &str) -> reqwest::Response {
    app.post(&format!("/v1/checkouts/{}/abandon", segment(key)), token)
        .await
}

async fn events_of_key(app: &TestApp, key: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE tenant_id = 'acme' AND idempotency_key = $1 \
         ORDER BY position",
    )
    .bind(key)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn nothing_recorded_for_a_key_answers_404_and_changes_nothing() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let body = problem(
        status_of(&app, &token, "k-never").await,
        StatusCode::NOT_FOUND,
        "checkout-not-found",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("in flight"));
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
    // 404 is not an outcome: the key is still free for a checkout.
    json(
        app.checkout(&token, "k-never", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn a_placed_key_answers_placed_with_its_order_and_abandoning_it_changes_nothing() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let order = json(
        app.checkout(&token, "k-1", dog_food(2)).await,
        StatusCode::CREATED,
    )
    .await;
    let status = json(status_of(&app, &token, "k-1").await, StatusCode::OK).await;
    assert_eq!(
        status,
        json!({"idempotency_key": "k-1", "state": "placed", "order": order, "abandoned_at": null})
    );
    let settled = json(abandon(&app, &token, "k-1").await, StatusCode::OK).await;
    assert_eq!(
        settled, status,
        "abandoning a placed key answers with its order"
    );
    assert_eq!(events_of_key(&app, "k-1").await, vec!["OrderPlaced"]);
    let read = json(
        app.get(
            &format!("/v1/orders/{}", order["id"].as_str().unwrap()),
            &token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["status"], "placed", "the order is not cancelled");
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 8);
}

#[tokio::test]
async fn an_abandoned_key_stores_nothing_for_any_later_checkout() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let settled = json(abandon(&app, &token, "k-1").await, StatusCode::OK).await;
    assert_eq!(settled["idempotency_key"], "k-1");
    assert_eq!(settled["state"], "abandoned");
    assert_eq!(settled["order"], Value::Null);
    let abandoned_at = settled["abandoned_at"].as_str().unwrap();
    assert!(
        abandoned_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(abandoned_at).is_ok(),
        "{abandoned_at}"
    );
    // Read back, and settled again: the same answer.
    assert_eq!(
        json(status_of(&app, &token, "k-1").await, StatusCode::OK).await,
        settled
    );
    assert_eq!(
        json(abandon(&app, &token, "k-1").await, StatusCode::OK).await,
        settled
    );
    // However late it arrives, a checkout with the key stores nothing.
    for _ in 0..2 {
        problem(
            app.checkout(&token, "k-1", dog_food(1)).await,
            StatusCode::CONFLICT,
            "checkout-abandoned",
        )
        .await;
    }
    assert_eq!(events_of_key(&app, "k-1").await, vec!["CheckoutAbandoned"]);
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 0);
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 10);
    let row: (String, Option<String>) = sqlx::query_as(
        "SELECT idempotency_key, customer_id FROM store_checkout_abandonments WHERE tenant_id = 'acme'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(row, ("k-1".to_owned(), Some("cust-1".to_owned())));
    // The stream is the one the order would have had.
    let stream: String = sqlx::query_scalar(
        "SELECT aggregate_type || '/' || aggregate_id || '#' || sequence FROM events \
         WHERE event_type = 'CheckoutAbandoned'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let id = order_domain::OrderId::for_checkout(
        &order_domain::TenantId::try_from("acme").unwrap(),
        &order_domain::IdempotencyKey::try_from("k-1").unwrap(),
    );
    assert_eq!(stream, format!("Order/{id}#1"));
}

#[tokio::test]
async fn an_abandoned_key_is_not_an_order_for_the_orders_routes() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let staff = app.staff("acme");
    json(abandon(&app, &token, "k-1").await, StatusCode::OK).await;
    let id = order_domain::OrderId::for_checkout(
        &order_domain::TenantId::try_from("acme").unwrap(),
        &order_domain::IdempotencyKey::try_from("k-1").unwrap(),
    );
    for (path, who) in [
        (format!("/v1/orders/{id}"), &token),
        (format!("/v1/orders/{id}"), &staff),
    ] {
        problem(
            app.get(&path, who).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    for (action, who) in [
        ("cancel", &token),
        ("cancel", &staff),
        ("pay", &staff),
        ("ship", &staff),
    ] {
        problem(
            app.post(&format!("/v1/orders/{id}/{action}"), who).await,
            StatusCode::NOT_FOUND,
            "not-found",
        )
        .await;
    }
    let listed = json(app.get("/v1/orders", &staff).await, StatusCode::OK).await;
    assert_eq!(listed["orders"], json!([]));
    assert_eq!(events_of_key(&app, "k-1").await, vec!["CheckoutAbandoned"]);
}

#[tokio::test]
async fn a_customer_sees_and_settles_only_their_own_keys() {
    let app = shop().await;
    let alice = app.customer("acme", "alice");
    let bob = app.customer("acme", "bob");
    json(
        app.checkout(&alice, "placed-by-alice", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    json(
        abandon(&app, &alice, "abandoned-by-alice").await,
        StatusCode::OK,
    )
    .await;
    for key in ["placed-by-alice", "abandoned-by-alice"] {
        problem(
            status_of(&app, &bob, key).await,
            StatusCode::NOT_FOUND,
            "checkout-not-found",
        )
        .await;
        problem(
            abandon(&app, &bob, key).await,
            StatusCode::NOT_FOUND,
            "checkout-not-found",
        )
        .await;
        // Bob's checkout with Alice's key is a reused key, whatever it was.
        problem(
            app.checkout(&bob, key, dog_food(1)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
        )
        .await;
    }
    assert_eq!(
        events_of_key(&app, "placed-by-alice").await,
        vec!["OrderPlaced"]
    );
    assert_eq!(
        events_of_key(&app, "abandoned-by-alice").await,
        vec!["CheckoutAbandoned"]
    );
    // Another tenant's key of the same name is unrelated.
    let other_tenant = app.customer("globex", "alice");
    problem(
        status_of(&app, &other_tenant, "placed-by-alice").await,
        StatusCode::NOT_FOUND,
        "checkout-not-found",
    )
    .await;
    let settled = json(
        abandon(&app, &other_tenant, "placed-by-alice").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settled["state"], "abandoned");
    assert_eq!(
        json(
            status_of(&app, &alice, "placed-by-alice").await,
            StatusCode::OK
        )
        .await["state"],
        "placed"
    );
}

#[tokio::test]
async fn staff_see_and_settle_any_key_and_a_key_staff_abandoned_refuses_every_customer() {
    let app = shop().await;
    let alice = app.customer("acme", "alice");
    let bob = app.customer("acme", "bob");
    let staff = app.staff("acme");
    let order = json(
        app.checkout(&alice, "k-placed", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    json(abandon(&app, &alice, "k-alice").await, StatusCode::OK).await;
    let placed = json(status_of(&app, &staff, "k-placed").await, StatusCode::OK).await;
    assert_eq!(placed["order"], order);
    assert_eq!(
        json(abandon(&app, &staff, "k-placed").await, StatusCode::OK).await,
        placed
    );
    let alices = json(status_of(&app, &staff, "k-alice").await, StatusCode::OK).await;
    assert_eq!(alices["state"], "abandoned");
    assert_eq!(
        json(abandon(&app, &staff, "k-alice").await, StatusCode::OK).await,
        alices
    );
    // A key staff abandoned: every customer's checkout is refused, and
    // every customer may read what became of it.
    let by_staff = json(abandon(&app, &staff, "k-staff").await, StatusCode::OK).await;
    assert_eq!(by_staff["state"], "abandoned");
    for customer in [&alice, &bob] {
        problem(
            app.checkout(customer, "k-staff", dog_food(1)).await,
            StatusCode::CONFLICT,
            "checkout-abandoned",
        )
        .await;
        assert_eq!(
            json(status_of(&app, customer, "k-staff").await, StatusCode::OK).await,
            by_staff
        );
        assert_eq!(
            json(abandon(&app, customer, "k-staff").await, StatusCode::OK).await,
            by_staff
        );
    }
    let row: Option<String> = sqlx::query_scalar(
        "SELECT customer_id FROM store_checkout_abandonments WHERE idempotency_key = 'k-staff'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(row, None, "staff's abandonment belongs to no customer");
    assert_eq!(
        events_of_key(&app, "k-staff").await,
        vec!["CheckoutAbandoned"]
    );
}

#[tokio::test]
async fn keys_that_cannot_be_a_path_segment_are_settled_with_the_query_form() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let query = |method: Method, path: &str, key: &str| {
        app.request(method, path, &token)
            .query(&[("key", key)])
            .send()
    };
    for key in [".", "..", "a/b", "a+b", "100%", "?#&=", "abandon"] {
        problem(
            query(Method::GET, "/v1/checkouts", key).await.unwrap(),
            StatusCode::NOT_FOUND,
            "checkout-not-found",
        )
        .await;
        let settled = json(
            query(Method::POST, "/v1/checkouts/abandon", key)
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(settled["idempotency_key"], key, "{key}");
        assert_eq!(settled["state"], "abandoned");
        assert_eq!(
            json(
                query(Method::GET, "/v1/checkouts", key).await.unwrap(),
                StatusCode::OK
            )
            .await,
            settled
        );
        problem(
            app.checkout(&token, key, dog_food(1)).await,
            StatusCode::CONFLICT,
            "checkout-abandoned",
        )
        .await;
    }
    // The path form names the same keys where a segment can carry them.
    for key in ["a/b", "a+b", "100%", "?#&=", "abandon"] {
        assert_eq!(
            json(status_of(&app, &token, key).await, StatusCode::OK).await["idempotency_key"],
            key
        );
    }
    // A key placed through the header reads the same through both forms.
    let order = json(
        app.checkout(&token, "x:y;z", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        json(
            query(Method::GET, "/v1/checkouts", "x:y;z").await.unwrap(),
            StatusCode::OK
        )
        .await["order"],
        order
    );
    assert_eq!(
        json(status_of(&app, &token, "x:y;z").await, StatusCode::OK).await["order"],
        order
    );
}

#[tokio::test]
async fn an_invalid_or_missing_key_answers_400() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let long = "k".repeat(256);
    for path in [
        "/v1/checkouts/a%20b".to_owned(),
        "/v1/checkouts/%C3%A9".to_owned(),
        format!("/v1/checkouts/{long}"),
        "/v1/checkouts?key=a%20b".to_owned(),
        format!("/v1/checkouts?key={long}"),
    ] {
        problem(
            app.get(&path, &token).await,
            StatusCode::BAD_REQUEST,
            "idempotency-key-invalid",
        )
        .await;
    }
    for path in [
        "/v1/checkouts/a%20b/abandon",
        "/v1/checkouts/abandon?key=%09",
    ] {
        problem(
            app.post(path, &token).await,
            StatusCode::BAD_REQUEST,
            "idempotency-key-invalid",
        )
        .await;
    }
    problem(
        app.get("/v1/checkouts", &token).await,
        StatusCode::BAD_REQUEST,
        "idempotency-key-missing",
    )
    .await;
    problem(
        app.post("/v1/checkouts/abandon", &token).await,
        StatusCode::BAD_REQUEST,
        "idempotency-key-missing",
    )
    .await;
    problem(
        app.get("/v1/checkouts?key=k&tenant=globex", &token).await,
        StatusCode::BAD_REQUEST,
        "invalid-query",
    )
    .await;
    problem(
        app.get("/v1/checkouts/k-1", "not-a-token").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_customer_may_abandon_a_bounded_number_of_checkouts_per_minute() {
    let app = shop_with(AppOptions {
        abandonment_limit: AbandonmentLimit {
            most: 5,
            per: Duration::from_secs(60),
        },
        ..AppOptions::default()
    })
    .await;
    let token = app.customer("acme", "cust-1");
    // 20 at once: the bound is counted under a lock, exactly.
    let keys: Vec<String> = (0..20).map(|i| format!("k-{i}")).collect();
    let answers = join_all(keys.iter().map(|key| abandon(&app, &token, key))).await;
    let mut abandoned = 0;
    for answer in answers {
        match answer.status() {
            StatusCode::OK => abandoned += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&wait), "Retry-After {wait}");
                let body =
                    problem(answer, StatusCode::TOO_MANY_REQUESTS, "too-many-requests").await;
                assert!(
                    body["detail"].as_str().unwrap().contains("at most 5"),
                    "{body}"
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(abandoned, 5);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE event_type = 'CheckoutAbandoned'")
            .await,
        5
    );
    // Settling a key already settled is never refused by the bound; nor is
    // another customer, nor staff.
    let settled: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM store_checkout_abandonments")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    json(abandon(&app, &token, &settled[0]).await, StatusCode::OK).await;
    json(
        app.checkout(&token, "k-placed", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    json(abandon(&app, &token, "k-placed").await, StatusCode::OK).await;
    json(
        abandon(&app, &app.customer("acme", "cust-2"), "k-other").await,
        StatusCode::OK,
    )
    .await;
    for i in 0..8 {
        json(
            abandon(&app, &app.staff("acme"), &format!("staff-{i}")).await,
            StatusCode::OK,
        )
        .await;
    }
}
