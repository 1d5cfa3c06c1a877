//! Overload and shutdown: an exhausted pool answers a fast 503 with
//! Retry-After, a request that runs too long answers 503 and stores nothing,
//! and a graceful shutdown finishes what is in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use order_store::GroupCommitSettings;
use reqwest::StatusCode;
use serde_json::json;
use store_orders_tests::app::{json, problem, AppOptions};
use store_orders_tests::TestApp;

/// Holds the inventory row of `sku` locked, as a long transaction would.
async fn lock_row(app: &TestApp, sku: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = app.db.pool.begin().await.unwrap();
    sqlx::query("SELECT on_hand FROM inventory WHERE sku = $1 FOR UPDATE")
        .bind(sku)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until `n` sessions wait on a row lock.
async fn waiting_on_locks(app: &TestApp, n: i64) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        app.db.name()
    );
    for _ in 0..200 {
        if app.db.count(&sql).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} sessions never queued on the lock");
}

fn one(sku: &str) -> serde_json::Value {
    json!({"lines": [{"sku": sku, "quantity": 1}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_pool_answers_a_fast_503_with_retry_after_and_the_held_requests_finish() {
    let app = std::sync::Arc::new(
        TestApp::spawn_with(AppOptions {
            pool_size: 2,
            acquire_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_secs(20),
            // Two group-commit writers, each holding a connection while it
            // stores: the two held checkouts exhaust the pool.
            group_commit: Some(GroupCommitSettings {
                writers: 2,
                ..GroupCommitSettings::default()
            }),
            ..AppOptions::default()
        })
        .await,
    );
    app.product("acme", "A", 10, 10).await;
    let token = app.customer("acme", "c");
    let lock = lock_row(&app, "A").await;
    // The second sent once the first waits: each has a writer of its own.
    let mut held = Vec::new();
    for i in 0..2_i64 {
        let (app_for_request, token) = (app.clone(), token.clone());
        held.push(tokio::spawn(async move {
            app_for_request
                .checkout(&token, &format!("held-{i}"), one("A"))
                .await
                .status()
        }));
        waiting_on_locks(&app, i + 1).await;
    }
    let started = Instant::now();
    let response = app.checkout(&token, "overflow", one("A")).await;
    let waited = started.elapsed();
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    problem(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(
        waited < Duration::from_secs(2),
        "answered in {waited:?}, not left hanging"
    );
    lock.commit().await.unwrap();
    for request in held {
        assert_eq!(request.await.unwrap(), StatusCode::CREATED);
    }
    // The refused checkout stored nothing: its retry is a fresh checkout.
    json(
        app.checkout(&token, "overflow", one("A")).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(app.on_hand("acme", "A").await, 7);
}

/// A timed-out request is ambiguous: its checkout may still commit once the
/// database gets to it. That is what the Idempotency-Key is for: the retry
/// with the same key finds the order (200) or places it (201), and either
/// way there is exactly one order and one decrement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_over_its_time_budget_answers_503_and_its_retry_makes_exactly_one_order() {
    let app = TestApp::spawn_with(AppOptions {
        request_timeout: Duration::from_millis(500),
        ..AppOptions::default()
    })
    .await;
    app.product("acme", "A", 10, 10).await;
    let token = app.customer("acme", "c");
    let lock = lock_row(&app, "A").await;
    let started = Instant::now();
    let response = app.checkout(&token, "slow", one("A")).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the budget, not left hanging"
    );
    assert!(response.headers().get("retry-after").is_some());
    problem(response, StatusCode::SERVICE_UNAVAILABLE, "timeout").await;
    lock.commit().await.unwrap();
    let retry = app.checkout(&token, "slow", one("A")).await;
    assert!(
        retry.status() == StatusCode::CREATED || retry.status() == StatusCode::OK,
        "{}",
        retry.status()
    );
    let order = json(
        app.get("/v1/orders?limit=100", &token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(order["orders"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        1
    );
    assert_eq!(app.on_hand("acme", "A").await, 9, "one decrement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_shutdown_stops_accepting_and_finishes_requests_in_flight() {
    let mut app = TestApp::spawn().await;
    app.product("acme", "A", 10, 10).await;
    let token = app.customer("acme", "c");
    let lock = lock_row(&app, "A").await;
    let in_flight = {
        let (url, token) = (format!("{}/v1/checkout", app.base_url), token.clone());
        let http = app.http.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .header("idempotency-key", "in-flight")
                .json(&one("A"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    waiting_on_locks(&app, 1).await;
    app.begin_shutdown();
    // Soon after the signal, a new connection is not served.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while reqwest::Client::new()
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "new connections are still served 5 s after the signal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.commit().await.unwrap();
    assert_eq!(
        in_flight.await.unwrap(),
        StatusCode::CREATED,
        "the in-flight checkout finished"
    );
    tokio::time::timeout(Duration::from_secs(10), app.stopped())
        .await
        .expect("the server stopped");
    assert_eq!(app.on_hand("acme", "A").await, 9);
}
