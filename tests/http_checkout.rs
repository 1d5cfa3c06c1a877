//! `POST /v1/checkout`, row by row of the contract's table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem};
use store_orders_tests::TestApp;

async fn shop() -> TestApp {
    let app = TestApp::spawn().await;
    app.product("acme", "DOG-FOOD-3KG", 125_000, 10).await;
    app.product("acme", "TOY", 5_000, 10).await;
    app
}

fn dog_food(quantity: i64) -> Value {
    json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": quantity}]})
}

#[tokio::test]
async fn a_first_checkout_answers_201_with_the_order_and_its_location() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let response = app.checkout(&token, "k-1", json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 2}, {"sku": "TOY", "quantity": 1}], "note": "ring twice"})).await;
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(response.headers().get("idempotent-replayed").is_none());
    let order = json(response, StatusCode::CREATED).await;
    assert_eq!(
        location,
        format!("/v1/orders/{}", order["id"].as_str().unwrap())
    );
    assert_eq!(order["status"], "placed");
    assert_eq!(order["customer_id"], "cust-1");
    assert_eq!(order["idempotency_key"], "k-1");
    assert_eq!(order["currency"], "PYG");
    assert_eq!(order["total"], 255_000);
    assert_eq!(order["note"], "ring twice");
    assert_eq!(
        order["lines"],
        json!([
            {"sku": "DOG-FOOD-3KG", "name": "Product DOG-FOOD-3KG", "quantity": 2, "unit_price": 125_000, "line_total": 250_000},
            {"sku": "TOY", "name": "Product TOY", "quantity": 1, "unit_price": 5_000, "line_total": 5_000},
        ])
    );
    let placed_at = order["placed_at"].as_str().unwrap();
    assert!(
        placed_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(placed_at).is_ok(),
        "{placed_at}"
    );
    assert!(order["order_number"].as_str().unwrap().starts_with("ORD-"));
    // Read-your-writes: the Location answers at once, with the same order.
    let read = json(app.get(&location, &token).await, StatusCode::OK).await;
    assert_eq!(read, order);
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 8);
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_answers_200_replayed_with_the_same_order() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let body =
        json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 2}, {"sku": "TOY", "quantity": 1}]});
    let first = json(app.checkout(&token, "k-1", body).await, StatusCode::CREATED).await;
    // Lines compared as a set: another order of the same lines is the same request.
    let reordered =
        json!({"lines": [{"sku": "TOY", "quantity": 1}, {"sku": "DOG-FOOD-3KG", "quantity": 2}]});
    let response = app.checkout(&token, "k-1", reordered).await;
    assert_eq!(
        response.headers().get("idempotent-replayed").unwrap(),
        "true"
    );
    assert!(response.headers().get("location").is_none());
    let replay = json(response, StatusCode::OK).await;
    assert_eq!(replay, first);
    assert_eq!(
        app.on_hand("acme", "DOG-FOOD-3KG").await,
        8,
        "stock taken once"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 1);
}

#[tokio::test]
async fn a_replay_shows_the_order_as_it_stands_now() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let first = json(
        app.checkout(&token, "k-1", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    let id = first["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/orders/{id}/pay"), &app.staff("acme"))
            .await,
        StatusCode::OK,
    )
    .await;
    let replay = json(
        app.checkout(&token, "k-1", dog_food(1)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(replay["order_number"], first["order_number"]);
    assert_eq!(replay["total"], first["total"]);
    assert_eq!(replay["status"], "paid");
}

#[tokio::test]
async fn the_same_key_with_another_body_or_customer_answers_422_key_reused() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    json(
        app.checkout(&token, "k-1", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    problem(
        app.checkout(&token, "k-1", dog_food(2)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    let other_note = json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 1}], "note": "hi"});
    problem(
        app.checkout(&token, "k-1", other_note).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    let other_customer = app.customer("acme", "cust-2");
    problem(
        app.checkout(&other_customer, "k-1", dog_food(1)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
    )
    .await;
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 9);
}

#[tokio::test]
async fn the_same_key_in_two_tenants_is_two_unrelated_orders() {
    let app = shop().await;
    app.product("zeta", "DOG-FOOD-3KG", 99, 5).await;
    let a = json(
        app.checkout(&app.customer("acme", "c"), "shared", dog_food(1))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let z = json(
        app.checkout(&app.customer("zeta", "c"), "shared", dog_food(1))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(a["id"], z["id"]);
    assert_eq!(
        (a["total"].as_i64(), z["total"].as_i64()),
        (Some(125_000), Some(99))
    );
}

#[tokio::test]
async fn a_missing_or_invalid_key_answers_400() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let response = app
        .request(Method::POST, "/v1/checkout", &token)
        .json(&dog_food(1))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST, "idempotency-key-missing").await;
    let long = "k".repeat(256);
    for bad in ["", long.as_str(), "two words", "tab\there", "\"two words\""] {
        let response = app
            .request(Method::POST, "/v1/checkout", &token)
            .header("idempotency-key", bad)
            .json(&dog_food(1))
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::BAD_REQUEST, "idempotency-key-invalid").await;
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap();
    let response = app
        .request(Method::POST, "/v1/checkout", &token)
        .header("idempotency-key", non_ascii)
        .json(&dog_food(1))
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::BAD_REQUEST, "idempotency-key-invalid").await;
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_key_of_255_characters_and_the_quoted_rfc_8941_form_are_accepted() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let longest = "k".repeat(255);
    json(
        app.checkout(&token, &longest, dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    let first = json(
        app.checkout(&token, "abc-123", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
    let quoted = app.checkout(&token, "\"abc-123\"", dog_food(1)).await;
    assert_eq!(quoted.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(json(quoted, StatusCode::OK).await["id"], first["id"]);
}

#[tokio::test]
async fn an_unknown_sku_answers_422_naming_it_and_stores_nothing() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let body = json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 1}, {"sku": "UNICORN", "quantity": 1}]});
    let p = problem(
        app.checkout(&token, "k-1", body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown-sku",
    )
    .await;
    assert_eq!(p["sku"], "UNICORN");
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 10);
    // Nothing stored: the same key is evaluated afresh.
    json(
        app.checkout(&token, "k-1", dog_food(1)).await,
        StatusCode::CREATED,
    )
    .await;
}

#[tokio::test]
async fn not_enough_stock_answers_409_naming_sku_requested_and_available() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let p = problem(
        app.checkout(&token, "k-1", dog_food(11)).await,
        StatusCode::CONFLICT,
        "out-of-stock",
    )
    .await;
    assert_eq!(
        (
            p["sku"].as_str(),
            p["requested"].as_i64(),
            p["available"].as_i64()
        ),
        (Some("DOG-FOOD-3KG"), Some(11), Some(10))
    );
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 10);
    app.product("acme", "DOG-FOOD-3KG", 125_000, 5).await;
    json(
        app.checkout(&token, "k-1", dog_food(11)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 4);
}

#[tokio::test]
async fn the_server_prices_every_line_and_ignores_client_prices() {
    let app = shop().await;
    let body = json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 1, "unit_price": 1, "line_total": 1}], "total": 1});
    let order = json(
        app.checkout(&app.customer("acme", "c"), "k", body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(order["lines"][0]["unit_price"], 125_000);
    assert_eq!(order["total"], 125_000);
}

#[tokio::test]
async fn invalid_bodies_answer_400_or_422_naming_the_field_and_store_nothing() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"lines": []}), "lines"),
        (
            json!({"lines": (0..101).map(|i| json!({"sku": format!("S{i}"), "quantity": 1})).collect::<Vec<_>>()}),
            "lines",
        ),
        (
            json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 0}]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"sku": "DOG-FOOD-3KG", "quantity": 10_001}]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"sku": "TOY", "quantity": 1}, {"sku": "DOG-FOOD-3KG", "quantity": 1.5}]}),
            "lines[1].quantity",
        ),
        (
            json!({"lines": [{"sku": "TOY", "quantity": "1"}]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"sku": "../etc/passwd", "quantity": 1}]}),
            "lines[0].sku",
        ),
        (
            json!({"lines": [{"sku": "TOY", "quantity": 1}, {"sku": "TOY", "quantity": 2}]}),
            "lines[1].sku",
        ),
        (
            json!({"lines": [{"sku": "TOY", "quantity": 1}], "note": "n".repeat(1001)}),
            "note",
        ),
        (json!({"lines": [{"sku": "TOY"}]}), "lines[0]"),
        (json!({"lines": "TOY"}), "lines"),
    ];
    for (body, field) in cases {
        let p = problem(
            app.checkout(&token, "k", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
        )
        .await;
        let named = p["field"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(field),
            "{body}: field {named:?}, expected {field:?}"
        );
    }
    for raw in ["{", "not json", "{\"lines\": [}", "[1,2]"] {
        let response = app
            .request(Method::POST, "/v1/checkout", &token)
            .header("idempotency-key", "k")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{raw}: {status}"
        );
        let slug = if status == StatusCode::BAD_REQUEST {
            "malformed-body"
        } else {
            "invalid-body"
        };
        problem(response, status, slug).await;
    }
    let no_type = app
        .request(Method::POST, "/v1/checkout", &token)
        .header("idempotency-key", "k")
        .body(dog_food(1).to_string())
        .send()
        .await
        .unwrap();
    problem(
        no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let huge = json!({"lines": [{"sku": "TOY", "quantity": 1}], "note": "x".repeat(70 * 1024)});
    problem(
        app.checkout(&token, "k", huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    )
    .await;
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_identical_checkouts_make_one_201_and_63_replays() {
    let app = Arc::new(shop().await);
    let token = app.customer("acme", "cust-1");
    let responses = join_all((0..64).map(|_| {
        let (app, token) = (app.clone(), token.clone());
        tokio::spawn(async move {
            let response = app.checkout(&token, "storm", dog_food(3)).await;
            let status = response.status();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            let body: Value = response.json().await.unwrap();
            (status, replayed, body)
        })
    }))
    .await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let (status, replayed, body) = response.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => assert!(replayed),
            other => panic!("a duplicate answered {other}: {body}"),
        }
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(
        app.on_hand("acme", "DOG-FOOD-3KG").await,
        7,
        "one decrement"
    );
}

/// Exactly one 201; every other answer a 200 marked `Idempotent-Replayed`.
async fn assert_one_created_and_the_rest_replayed(
    answers: Vec<Result<reqwest::Response, tokio::task::JoinError>>,
    round: usize,
) {
    let mut created = 0;
    for answer in answers {
        let response = answer.unwrap();
        let (status, replayed) = (
            response.status(),
            response.headers().get("idempotent-replayed").is_some(),
        );
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => assert!(replayed),
            other => panic!(
                "round {round}: a duplicate answered {other}: {}",
                response.text().await.unwrap()
            ),
        }
    }
    assert_eq!(created, 1, "round {round}");
}

/// Issue 10, over HTTP: 32 duplicates of a checkout that takes the last two
/// units, 20 times: one 201 and 31 replays each time, never a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_a_checkout_taking_the_last_units_are_replays_never_409() {
    let app = Arc::new(TestApp::spawn().await);
    let token = app.customer("acme", "cust-1");
    for round in 0..20 {
        let sku = format!("LAST-{round}");
        app.product("acme", &sku, 5_000, 2).await;
        let key = format!("last-{round}");
        let body = json!({"lines": [{"sku": sku, "quantity": 2}]});
        let answers = join_all((0..32).map(|_| {
            let (app, token, key, body) = (app.clone(), token.clone(), key.clone(), body.clone());
            tokio::spawn(async move { app.checkout(&token, &key, body).await })
        }))
        .await;
        assert_one_created_and_the_rest_replayed(answers, round).await;
        assert_eq!(app.on_hand("acme", &sku).await, 0);
    }
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 20);
}

/// The same for a stock adjustment that takes stock to zero: one 201, the
/// rest replays, never a 409 below-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_an_adjustment_to_zero_are_replays_never_409() {
    let app = Arc::new(TestApp::spawn().await);
    let staff = app.staff("acme");
    for round in 0..20 {
        let sku = format!("P-{round}");
        app.product("acme", &sku, 5_000, 3).await;
        let key = format!("write-off-{round}");
        let answers = join_all((0..16).map(|_| {
            let (app, staff, key, sku) = (app.clone(), staff.clone(), key.clone(), sku.clone());
            tokio::spawn(async move {
                app.request(Method::POST, &format!("/v1/products/{sku}/stock"), &staff)
                    .header("idempotency-key", key)
                    .json(&json!({"delta": -3, "reason": "count"}))
                    .send()
                    .await
                    .unwrap()
            })
        }))
        .await;
        assert_one_created_and_the_rest_replayed(answers, round).await;
        assert_eq!(app.on_hand("acme", &sku).await, 0);
    }
}

/// Duplicates of A and a different customer's B racing for the last units:
/// one of them is placed, and all of A's duplicates tell the same story.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_one_checkout_racing_another_agree_on_its_outcome() {
    let app = Arc::new(TestApp::spawn().await);
    let a_token = app.customer("acme", "cust-a");
    let b_token = app.customer("acme", "cust-b");
    for round in 0..20 {
        let sku = format!("LAST-{round}");
        app.product("acme", &sku, 5_000, 3).await;
        let body = json!({"lines": [{"sku": sku, "quantity": 3}]});
        let answers = join_all((0..=16).map(|i| {
            let (app, body) = (app.clone(), body.clone());
            let (who, token, key) = if i == 8 {
                ("b", b_token.clone(), format!("b-{round}"))
            } else {
                ("a", a_token.clone(), format!("a-{round}"))
            };
            tokio::spawn(async move {
                let response = app.checkout(&token, &key, body).await;
                (who, response.status(), response.text().await.unwrap())
            })
        }))
        .await;
        let answers: Vec<_> = answers.into_iter().map(|a| a.unwrap()).collect();
        let a_statuses: Vec<StatusCode> = answers
            .iter()
            .filter(|(who, ..)| *who == "a")
            .map(|(_, status, _)| *status)
            .collect();
        let b_status = answers.iter().find(|(who, ..)| *who == "b").unwrap().1;
        let a_placed = a_statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::CREATED | StatusCode::OK));
        let a_refused = a_statuses.iter().all(|s| *s == StatusCode::CONFLICT);
        assert!(
            a_placed || a_refused,
            "round {round}: A's duplicates disagree: {answers:?}"
        );
        if a_placed {
            assert_eq!(b_status, StatusCode::CONFLICT, "round {round}");
            assert_eq!(
                a_statuses
                    .iter()
                    .filter(|s| **s == StatusCode::CREATED)
                    .count(),
                1
            );
        } else {
            assert_eq!(b_status, StatusCode::CREATED, "round {round}");
        }
        assert_eq!(app.on_hand("acme", &sku).await, 0);
    }
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 20);
}

/// JSON Schema calls 2.0 and 2e0 integers; so does the service.
#[tokio::test]
async fn whole_numbers_written_with_a_decimal_point_or_exponent_are_those_numbers() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let order = json(
        app.checkout(
            &token,
            "k-decimal",
            json!({"lines": [{"sku": "TOY", "quantity": 2.0}, {"sku": "DOG-FOOD-3KG", "quantity": 1e0}]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][1]["quantity"], 1);
    let response = app
        .request(Method::PUT, "/v1/products/TOY", &app.staff("acme"))
        .json(&json!({"name": "Toy", "unit_price": 5500.0, "currency": "PYG"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(response, StatusCode::OK).await["unit_price"], 5500);
    let fraction = app
        .checkout(
            &token,
            "k-fraction",
            json!({"lines": [{"sku": "TOY", "quantity": 1.5}]}),
        )
        .await;
    problem(fraction, StatusCode::UNPROCESSABLE_ENTITY, "invalid-body").await;
}

#[tokio::test]
async fn the_order_channel_header_is_recorded_with_the_order_and_is_not_part_of_its_identity() {
    let app = shop().await;
    let token = app.customer("acme", "cust-1");
    let send = |key: &'static str, channel: Option<&'static str>| {
        let mut request = app
            .request(Method::POST, "/v1/checkout", &token)
            .header("idempotency-key", key);
        if let Some(channel) = channel {
            request = request.header("order-channel", channel);
        }
        request.json(&dog_food(1)).send()
    };
    json(
        send("from-page", Some("shop")).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    json(send("from-api", None).await.unwrap(), StatusCode::CREATED).await;
    // A retry from another channel is the same checkout: a replay, and the
    // channel of the first attempt stays.
    json(
        send("from-page", Some("api")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    for bad in ["pos", "unrecorded", "SHOP", ""] {
        let response = send("bad-channel", Some(bad)).await.unwrap();
        let problem = problem(response, StatusCode::BAD_REQUEST, "invalid-header").await;
        assert_eq!(problem["field"], "order-channel", "{bad}: {problem}");
    }
    let channels: Vec<(String, String)> = sqlx::query_as(
        "SELECT idempotency_key, payload->'OrderPlaced'->>'channel' FROM events \
         WHERE event_type = 'OrderPlaced' ORDER BY idempotency_key",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        channels,
        vec![
            ("from-api".to_owned(), "api".to_owned()),
            ("from-page".to_owned(), "shop".to_owned()),
        ]
    );
    let versions: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT event_version FROM events WHERE event_type = 'OrderPlaced'",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(versions, vec!["2".to_owned()]);
}
