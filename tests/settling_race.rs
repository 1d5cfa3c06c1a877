//! An abandon racing checkouts with the same key, across two replicas of
//! the service on one PostgreSQL: in every trial exactly one of the two
//! outcomes happens, all the way down to the stock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use store_orders_tests::TestApp;

const TRIALS: usize = 240;
/// Trials run at once (each is three requests).
const AT_ONCE: usize = 4;
const STOCK: i64 = 100_000;

struct Answer {
    status: StatusCode,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder, jitter: Duration) -> Answer {
    tokio::time::sleep(jitter).await;
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, body }
}

fn jitter() -> Duration {
    Duration::from_micros(rand::random_range(0..3_000))
}

#[derive(Debug, Default)]
struct Tally {
    abandoned: usize,
    placed: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandon_racing_two_checkouts_has_exactly_one_winner_every_time() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, STOCK).await;
    let replica = app.replica().await;
    let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
    let mut tally = Tally::default();
    for round in 0..TRIALS / AT_ONCE {
        let trials = (0..AT_ONCE).map(|i| {
            let key = format!("race-{round}-{i}");
            // A customer per trial: the bound on abandonments is not what
            // is under test.
            let token = app.customer("acme", &format!("cust-{round}-{i}"));
            let (app, replica, body) = (&app, &replica, &body);
            async move {
                let token = &token;
                let checkout = |base: &str| {
                    app.http
                        .post(format!("{base}/v1/checkout"))
                        .bearer_auth(token)
                        .header("idempotency-key", &key)
                        .json(body)
                };
                // The abandon goes to either replica; each checkout to its own.
                let abandon_base = if i % 2 == 0 {
                    &app.base_url
                } else {
                    &replica.base_url
                };
                let (abandon, first, second) = tokio::join!(
                    send(
                        app.http
                            .post(format!("{abandon_base}/v1/checkouts/{key}/abandon"))
                            .bearer_auth(token),
                        jitter()
                    ),
                    send(checkout(&app.base_url), jitter()),
                    send(checkout(&replica.base_url), jitter()),
                );
                (key, abandon, first, second)
            }
        });
        for (key, abandon, first, second) in join_all(trials).await {
            assert_eq!(abandon.status, StatusCode::OK, "{key}: {}", abandon.body);
            let events: Vec<String> = sqlx::query_scalar(
                "SELECT event_type FROM events WHERE tenant_id = 'acme' AND aggregate_type = 'Order' \
                 AND idempotency_key = $1",
            )
            .bind(&key)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
            let rows = app
                .db
                .count(&format!(
                    "SELECT count(*) FROM store_orders WHERE idempotency_key = '{key}'"
                ))
                .await;
            match abandon.body["state"].as_str() {
                Some("abandoned") => {
                    tally.abandoned += 1;
                    for checkout in [&first, &second] {
                        assert_eq!(
                            checkout.status,
                            StatusCode::CONFLICT,
                            "{key}: {}",
                            checkout.body
                        );
                        assert_eq!(checkout.body["type"], "/problems/checkout-abandoned");
                    }
                    assert_eq!(events, vec!["CheckoutAbandoned"], "{key}");
                    assert_eq!(rows, 0, "{key}: no order row");
                }
                Some("placed") => {
                    tally.placed += 1;
                    let mut statuses = [first.status, second.status];
                    statuses.sort();
                    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED], "{key}");
                    assert_eq!(first.body["id"], second.body["id"], "{key}");
                    assert_eq!(abandon.body["order"]["id"], first.body["id"], "{key}");
                    assert_eq!(events, vec!["OrderPlaced"], "{key}");
                    assert_eq!(rows, 1, "{key}");
                }
                other => panic!("{key}: state {other:?}"),
            }
        }
    }
    // Stock moved exactly once per placed order, never for an abandoned key.
    assert_eq!(
        app.on_hand("acme", "A").await,
        STOCK - i64::try_from(tally.placed).unwrap()
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM store_checkout_abandonments")
            .await,
        i64::try_from(tally.abandoned).unwrap()
    );
    // Both outcomes happened: the race was real.
    assert!(
        tally.abandoned > 0 && tally.placed > 0,
        "only one outcome in {TRIALS} trials: {tally:?}"
    );
    eprintln!("{TRIALS} trials: {tally:?}");
}
