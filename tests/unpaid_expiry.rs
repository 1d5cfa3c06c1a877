//! Unpaid orders expire (issue 24), against the real PostgreSQL: several
//! sweepers at once expire each overdue order exactly once and give its
//! stock back exactly once; paid orders and orders not yet due stay; an
//! expired order reads `expired` and refuses pay, ship and cancel with 409
//! `/invalid-transition`; every replica of the real binary runs a sweeper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use order_service::Role;
use order_store::{
    expire_unpaid_orders, GroupCommit, GroupCommitSettings, OrderCommands, UnpaidExpiry,
};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use store_orders_tests::app::{json, problem, token_for};
use store_orders_tests::fixtures::*;
use store_orders_tests::service_process::{ServiceProcess, ANY_PORT};
use store_orders_tests::{TestApp, TestDatabase};

const SERVICE: &str = env!("CARGO_BIN_EXE_order-service-under-test");

const HALF_AN_HOUR: UnpaidExpiry = UnpaidExpiry {
    after: Duration::from_secs(1_800),
    every: Duration::from_secs(15),
    batch: 200,
};

/// Streams with more than one `OrderExpired`: must be none.
async fn expired_twice(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_id FROM events WHERE event_type = 'OrderExpired' \
         GROUP BY tenant_id, aggregate_id HAVING count(*) > 1) AS twice",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_sweepers_expire_each_overdue_order_once_and_give_its_stock_back_once() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 1_000).await;
    stocked_product(&db.pool, "acme", "B", 1_000, 1_000).await;
    let lone = Arc::new(OrderCommands::new(db.pool.clone()));
    let writers = GroupCommit::start(db.pool.clone(), GroupCommitSettings::default());
    let grouped = Arc::new(OrderCommands::new(db.pool.clone()).with_group_commit(writers));
    for i in 0..40 {
        let customer = format!("cust-{}", i % 4);
        lone.place_order(
            &as_customer("acme", &customer),
            checkout(&customer, &format!("k-{i}"), &[("A", 2), ("B", 1)]),
        )
        .await
        .unwrap();
    }
    for i in 0..5 {
        lone.mark_paid(
            &as_staff("acme"),
            order_id("acme", &format!("k-{i}")),
            now(),
        )
        .await
        .unwrap();
    }
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 920);

    // Not due yet: nothing happens.
    let early = expire_unpaid_orders(&db.pool, &lone, &HALF_AN_HOUR, Utc::now())
        .await
        .unwrap();
    assert_eq!((early.due, early.expired), (0, 0));

    // An hour later, four sweepers over two processes' commands at once.
    let later = Utc::now() + chrono::Duration::hours(1);
    let sweeps = join_all((0..4).map(|i| {
        let pool = db.pool.clone();
        let commands = if i % 2 == 0 {
            Arc::clone(&lone)
        } else {
            Arc::clone(&grouped)
        };
        tokio::spawn(async move {
            expire_unpaid_orders(&pool, &commands, &HALF_AN_HOUR, later)
                .await
                .unwrap()
        })
    }))
    .await;
    let expired: usize = sweeps.into_iter().map(|s| s.unwrap().expired).sum();
    assert_eq!(
        expired, 35,
        "each overdue unpaid order expired by one sweeper"
    );
    assert_eq!(expired_twice(&db.pool).await, 0);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM events WHERE event_type = 'OrderExpired'"
        )
        .await,
        35
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM events WHERE event_type = 'OrderExpired' \
             AND metadata->>'actor' = 'system:unpaid-expiry'"
        )
        .await,
        35
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM store_orders WHERE status = 'expired'"
        )
        .await,
        35
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM store_orders WHERE status = 'paid'"
        )
        .await,
        5
    );
    // The five paid orders keep their stock; the rest came back once.
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 990);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 995);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM store_unpaid_holds").await,
        0,
        "nothing unpaid is held any more"
    );
    let again = expire_unpaid_orders(&db.pool, &lone, &HALF_AN_HOUR, later)
        .await
        .unwrap();
    assert_eq!((again.due, again.expired), (0, 0));
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn an_expired_order_reads_expired_and_refuses_pay_ship_and_cancel() {
    let app = TestApp::spawn().await;
    app.product("acme", "DOG-FOOD", 125_000, 10).await;
    let ana = app.customer("acme", "ana");
    let staff = app.staff("acme");
    let order = json(
        app.checkout(
            &ana,
            "k-1",
            json!({ "lines": [{ "sku": "DOG-FOOD", "quantity": 3 }] }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = order["id"].as_str().unwrap();
    let commands = OrderCommands::new(app.db.pool.clone());
    let later = Utc::now() + chrono::Duration::hours(1);
    let sweep = expire_unpaid_orders(&app.db.pool, &commands, &HALF_AN_HOUR, later)
        .await
        .unwrap();
    assert_eq!(sweep.expired, 1);

    let read = json(
        app.get(&format!("/v1/orders/{id}"), &ana).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["status"], "expired");
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 10);
    let listed = json(
        app.get("/v1/orders?status=expired", &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["orders"][0]["id"], id);

    for (action, token) in [
        ("pay", &staff),
        ("ship", &staff),
        ("cancel", &staff),
        ("cancel", &ana),
    ] {
        let refused = problem(
            app.post(&format!("/v1/orders/{id}/{action}"), token).await,
            StatusCode::CONFLICT,
            "invalid-transition",
        )
        .await;
        assert_eq!(refused["current_status"], "expired", "{action}");
    }
    // A retry of the checkout is its order, as it stands now.
    let replay = app
        .checkout(
            &ana,
            "k-1",
            json!({ "lines": [{ "sku": "DOG-FOOD", "quantity": 3 }] }),
        )
        .await;
    assert_eq!(json(replay, StatusCode::OK).await["status"], "expired");
    assert_eq!(
        app.on_hand("acme", "DOG-FOOD").await,
        10,
        "stock came back once"
    );
}

/// Two replicas of the real binary, each with its sweeper (an order may
/// stay unpaid one second, looked for every 100 ms): every order placed
/// through either expires exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_runs_the_sweeper_and_each_order_expires_once() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 500).await;
    let env = [
        ("ORDERS_SKIP_MIGRATIONS", "true"),
        ("ORDERS_UNPAID_EXPIRY", "1s"),
        ("ORDERS_EXPIRY_SWEEP", "100ms"),
    ];
    let replicas = [
        ServiceProcess::start(SERVICE, &db.url(), ANY_PORT, &env).await,
        ServiceProcess::start(SERVICE, &db.url(), ANY_PORT, &env).await,
    ];
    let http = reqwest::Client::new();
    for i in 0..30 {
        let replica = &replicas[i % 2];
        let customer = format!("cust-{}", i % 3);
        let response = http
            .post(format!("http://127.0.0.1:{}/v1/checkout", replica.port))
            .bearer_auth(token_for("acme", &customer, Role::Customer))
            .header("Idempotency-Key", format!("k-{i}"))
            .json(&json!({ "lines": [{ "sku": "A", "quantity": 2 }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let expired = count(
            &db.pool,
            "SELECT count(*) FROM store_orders WHERE status = 'expired'",
        )
        .await;
        if expired == 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {expired} of 30 orders expired within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(expired_twice(&db.pool).await, 0);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM events WHERE event_type = 'OrderExpired'"
        )
        .await,
        30
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 500);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM store_unpaid_holds").await,
        0
    );
    assert_read_model_matches_events(&db.pool).await;
}
