//! The bounds on what one customer's unpaid orders hold (issue 24), against
//! the real service and PostgreSQL: a checkout beyond the open-orders or
//! the units bound answers 409 `/unpaid-limit` naming the bound and stores
//! nothing; a replay of a placed order is never refused by it; paying or
//! cancelling releases what an order held; the bound holds across
//! replicas, for lone appends and group-commit batches alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use futures::future::join_all;
use order_service::Role;
use order_store::{GroupCommitSettings, UnpaidLimit};
use reqwest::StatusCode;
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem, AppOptions};
use store_orders_tests::fixtures::assert_read_model_matches_events;
use store_orders_tests::TestApp;

async fn bounded(orders: u32, units: u32) -> TestApp {
    TestApp::spawn_with(AppOptions {
        unpaid_limit: UnpaidLimit { orders, units },
        ..AppOptions::default()
    })
    .await
}

fn lines(sku: &str, quantity: i64) -> Value {
    json!({ "lines": [{ "sku": sku, "quantity": quantity }] })
}

/// What the holds table says of a customer: (open unpaid orders, units).
async fn holds(app: &TestApp, customer: &str) -> Option<(i64, i64)> {
    sqlx::query_as(
        "SELECT orders, units FROM store_unpaid_holds WHERE tenant_id = 'acme' AND customer_id = $1",
    )
    .bind(customer)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn it_refuses_an_order_beyond_the_open_unpaid_orders_bound_and_names_it() {
    let app = bounded(2, 1_000).await;
    app.product("acme", "DOG-FOOD", 125_000, 100).await;
    let ana = app.customer("acme", "ana");

    let first = json(
        app.checkout(&ana, "k-1", lines("DOG-FOOD", 1)).await,
        StatusCode::CREATED,
    )
    .await;
    json(
        app.checkout(&ana, "k-2", lines("DOG-FOOD", 1)).await,
        StatusCode::CREATED,
    )
    .await;
    let refused = problem(
        app.checkout(&ana, "k-3", lines("DOG-FOOD", 1)).await,
        StatusCode::CONFLICT,
        "unpaid-limit",
    )
    .await;
    assert_eq!(refused["limit"], "orders");
    assert_eq!(refused["most"], 2);
    assert_eq!(refused["held"], 2);
    assert_eq!(
        app.on_hand("acme", "DOG-FOOD").await,
        98,
        "the refused order took nothing"
    );
    assert_eq!(holds(&app, "ana").await, Some((2, 2)));

    // A replay of a placed order is never refused by the bound.
    let replay = app.checkout(&ana, "k-1", lines("DOG-FOOD", 1)).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(json(replay, StatusCode::OK).await["id"], first["id"]);

    // Another customer has bounds of their own.
    let bo = app.customer("acme", "bo");
    json(
        app.checkout(&bo, "k-bo", lines("DOG-FOOD", 1)).await,
        StatusCode::CREATED,
    )
    .await;

    // Paying one releases it: the refused checkout's key goes through now.
    let staff = app.staff("acme");
    let id = first["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/orders/{id}/pay"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((1, 1)));
    json(
        app.checkout(&ana, "k-3", lines("DOG-FOOD", 1)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((2, 2)));
    assert_read_model_matches_events(&app.db.pool).await;
}

#[tokio::test]
async fn it_refuses_units_beyond_the_bound_and_a_cancellation_releases_them() {
    let app = bounded(10, 10).await;
    app.product("acme", "DOG-FOOD", 125_000, 100).await;
    let ana = app.customer("acme", "ana");

    // One order alone may not hold more than the bound.
    let too_big = problem(
        app.checkout(&ana, "k-big", lines("DOG-FOOD", 11)).await,
        StatusCode::CONFLICT,
        "unpaid-limit",
    )
    .await;
    assert_eq!(too_big["limit"], "units");
    assert_eq!(too_big["most"], 10);
    assert_eq!(too_big["held"], 0);
    assert_eq!(holds(&app, "ana").await, None, "nothing held, no row");

    let first = json(
        app.checkout(&ana, "k-1", lines("DOG-FOOD", 8)).await,
        StatusCode::CREATED,
    )
    .await;
    let over = problem(
        app.checkout(&ana, "k-2", lines("DOG-FOOD", 3)).await,
        StatusCode::CONFLICT,
        "unpaid-limit",
    )
    .await;
    assert_eq!(over["limit"], "units");
    assert_eq!(over["held"], 8);
    json(
        app.checkout(&ana, "k-3", lines("DOG-FOOD", 2)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((2, 10)));
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 90);

    let id = first["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/orders/{id}/cancel"), &ana).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((1, 2)));
    json(
        app.checkout(&ana, "k-2", lines("DOG-FOOD", 3)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((2, 5)));
    assert_read_model_matches_events(&app.db.pool).await;
}

#[tokio::test]
async fn a_paid_order_cancelled_by_staff_releases_nothing_twice() {
    let app = bounded(1, 100).await;
    app.product("acme", "DOG-FOOD", 125_000, 100).await;
    let ana = app.customer("acme", "ana");
    let staff = app.staff("acme");
    let order = json(
        app.checkout(&ana, "k-1", lines("DOG-FOOD", 4)).await,
        StatusCode::CREATED,
    )
    .await;
    let id = order["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/orders/{id}/pay"), &staff).await,
        StatusCode::OK,
    )
    .await;
    json(
        app.post(&format!("/v1/orders/{id}/cancel"), &staff).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, None);
    json(
        app.checkout(&ana, "k-2", lines("DOG-FOOD", 4)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(holds(&app, "ana").await, Some((1, 4)));
    problem(
        app.checkout(&ana, "k-3", lines("DOG-FOOD", 1)).await,
        StatusCode::CONFLICT,
        "unpaid-limit",
    )
    .await;
    assert_read_model_matches_events(&app.db.pool).await;
}

/// 50 checkouts of one customer, each sent twice, at once, through a
/// replica storing by group commit and one storing each append alone:
/// exactly 5 orders, each key's two answers agree (an order and its
/// replay, or two refusals), never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_checkouts_of_one_customer_across_replicas_place_exactly_the_bound() {
    let limit = UnpaidLimit {
        orders: 5,
        units: 1_000,
    };
    let app = TestApp::spawn_with(AppOptions {
        unpaid_limit: limit,
        ..AppOptions::default()
    })
    .await;
    let lone = app
        .replica_with(AppOptions {
            unpaid_limit: limit,
            group_commit: None,
            ..AppOptions::default()
        })
        .await;
    let grouped = app
        .replica_with(AppOptions {
            unpaid_limit: limit,
            group_commit: Some(GroupCommitSettings::default()),
            ..AppOptions::default()
        })
        .await;
    app.product("acme", "DOG-FOOD", 1_000, 1_000).await;
    let token = app.token("acme", "ana", Role::Customer);
    let bases = [
        app.base_url.clone(),
        lone.base_url.clone(),
        grouped.base_url.clone(),
    ];
    let answers = join_all((0..100).map(|i| {
        let base = bases[i % bases.len()].clone();
        let http = app.http.clone();
        let token = token.clone();
        let key = format!("k-{}", i / 2);
        async move {
            let response = http
                .post(format!("{base}/v1/checkout"))
                .bearer_auth(token)
                .header("Idempotency-Key", &key)
                .json(&lines("DOG-FOOD", 2))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (key, status, body)
        }
    }))
    .await;
    let mut by_key: HashMap<String, Vec<(StatusCode, Value)>> = HashMap::new();
    for (key, status, body) in answers {
        assert!(!status.is_server_error(), "{key}: {status} {body}");
        by_key.entry(key).or_default().push((status, body));
    }
    let mut placed = 0;
    for (key, pair) in &by_key {
        let mut statuses: Vec<u16> = pair.iter().map(|(s, _)| s.as_u16()).collect();
        statuses.sort_unstable();
        match statuses.as_slice() {
            [200, 201] => {
                assert_eq!(
                    pair[0].1["id"], pair[1].1["id"],
                    "{key}: a replay is its order"
                );
                placed += 1;
            }
            [409, 409] => {
                for (_, body) in pair {
                    assert!(
                        body["type"].as_str().unwrap().ends_with("/unpaid-limit"),
                        "{body}"
                    );
                    assert_eq!(body["limit"], "orders");
                    assert_eq!(body["most"], 5);
                }
            }
            other => panic!("{key}: its two requests disagree: {other:?} {pair:?}"),
        }
    }
    assert_eq!(placed, 5, "exactly the bound is placed");
    let orders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM store_orders WHERE tenant_id = 'acme' AND customer_id = 'ana'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(orders, 5);
    assert_eq!(holds(&app, "ana").await, Some((5, 10)));
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 990);
    assert_read_model_matches_events(&app.db.pool).await;
}
