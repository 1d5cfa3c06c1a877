//! The typed client's retries: one Idempotency-Key across all attempts of a
//! checkout; retries on lost answers, 5xx and connection errors; never on
//! other 4xx; and when the retries run out, a settled key: the order, "not
//! placed", or (only when settling got no answer) "unknown" with the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use order_api::{CheckoutLine, CheckoutState, ProblemKind};
use order_client::{ClientError, OrdersClient, RetryPolicy};
use store_orders_tests::http_proxy::{CheckoutProxy, Faults};
use store_orders_tests::proxy::AnswerLosingProxy;
use store_orders_tests::TestApp;

fn line(sku: &str, quantity: i64) -> CheckoutLine {
    CheckoutLine {
        sku: sku.into(),
        quantity,
    }
}

fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_lost_answer_is_retried_with_the_same_key_and_returns_the_same_order_once() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    let proxy = AnswerLosingProxy::start(app.address, 1).await;
    let client = OrdersClient::with_policy(
        &format!("http://{}", proxy.address),
        &app.customer("acme", "cust-1"),
        quick_policy(4),
    )
    .unwrap();
    let placed = client.checkout(&[line("A", 3)], None).await.unwrap();
    assert!(placed.replayed, "the retry is answered as a replay");
    assert_eq!(placed.attempts, 2);
    assert_eq!(
        placed.order.idempotency_key.as_deref(),
        Some(placed.idempotency_key.as_str())
    );
    assert!(
        uuid::Uuid::try_parse(&placed.idempotency_key).is_ok(),
        "a UUIDv4 key"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(app.on_hand("acme", "A").await, 7, "one decrement");
    let read = client.get_order(placed.order.id).await.unwrap();
    assert_eq!(read, placed.order);
}

#[tokio::test]
async fn a_final_answer_is_not_retried_and_out_of_stock_comes_back_typed() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 1).await;
    let client =
        OrdersClient::with_policy(&app.base_url, &app.customer("acme", "c"), quick_policy(5))
            .unwrap();
    let err = client.checkout(&[line("A", 2)], None).await.unwrap_err();
    assert_eq!(err.problem_kind(), Some(ProblemKind::OutOfStock));
    let ClientError::Problem { status, problem } = err else {
        panic!()
    };
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (problem.extensions.requested, problem.extensions.available),
        (Some(2), Some(1))
    );
}

/// A stand-in service that answers from a script and records every
/// Idempotency-Key it receives.
struct Scripted {
    answers: Vec<(StatusCode, String)>,
    calls: AtomicUsize,
    keys: Mutex<Vec<String>>,
}

async fn scripted(State(script): State<Arc<Scripted>>, headers: HeaderMap) -> Response {
    let n = script.calls.fetch_add(1, Ordering::SeqCst);
    if let Some(key) = headers.get("idempotency-key") {
        script
            .keys
            .lock()
            .unwrap()
            .push(key.to_str().unwrap().to_owned());
    }
    let (status, body) = script.answers[n.min(script.answers.len() - 1)].clone();
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    (
        status,
        [("content-type", content_type), ("retry-after", "0")],
        body,
    )
        .into_response()
}

async fn scripted_server(answers: Vec<(StatusCode, String)>) -> (String, Arc<Scripted>) {
    let script = Arc::new(Scripted {
        answers,
        calls: AtomicUsize::new(0),
        keys: Mutex::new(vec![]),
    });
    let router = Router::new()
        .route("/v1/checkout", post(scripted))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, script)
}

fn problem_body(kind: ProblemKind) -> String {
    serde_json::to_string(&kind.problem("scripted")).unwrap()
}

fn order_body() -> String {
    serde_json::json!({
        "id": uuid::Uuid::new_v4(), "order_number": "ORD-0000-0000-0000", "status": "placed",
        "customer_id": "c", "idempotency_key": "k", "lines": [], "currency": "PYG", "total": 0,
        "placed_at": "2026-11-28T10:00:00Z", "updated_at": "2026-11-28T10:00:00Z"
    })
    .to_string()
}

#[tokio::test]
async fn it_retries_503_and_500_with_the_same_key_until_an_answer() {
    let (url, script) = scripted_server(vec![
        (
            StatusCode::SERVICE_UNAVAILABLE,
            problem_body(ProblemKind::Unavailable),
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            problem_body(ProblemKind::Internal),
        ),
        (StatusCode::CREATED, order_body()),
    ])
    .await;
    let client = OrdersClient::with_policy(&url, "token", quick_policy(5)).unwrap();
    let placed = client.checkout(&[line("A", 1)], None).await.unwrap();
    assert_eq!(placed.attempts, 3);
    let keys = script.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == placed.idempotency_key),
        "{keys:?}"
    );
}

#[tokio::test]
async fn it_never_retries_a_4xx() {
    for kind in [
        ProblemKind::OutOfStock,
        ProblemKind::IdempotencyKeyReused,
        ProblemKind::InvalidBody,
        ProblemKind::Unauthenticated,
    ] {
        let (url, script) = scripted_server(vec![(kind.status(), problem_body(kind))]).await;
        let client = OrdersClient::with_policy(&url, "token", quick_policy(5)).unwrap();
        let err = client.checkout(&[line("A", 1)], None).await.unwrap_err();
        assert_eq!(err.problem_kind(), Some(kind));
        assert_eq!(
            script.calls.load(Ordering::SeqCst),
            1,
            "{kind:?} was retried"
        );
    }
}

#[tokio::test]
async fn it_gives_up_after_the_attempt_budget() {
    let (url, script) = scripted_server(vec![(
        StatusCode::SERVICE_UNAVAILABLE,
        problem_body(ProblemKind::Unavailable),
    )])
    .await;
    let client = OrdersClient::with_policy(&url, "token", quick_policy(4)).unwrap();
    let err = client
        .checkout_with_key("k-1", &[line("A", 1)], None)
        .await
        .unwrap_err();
    assert_eq!(err.problem_kind(), Some(ProblemKind::Unavailable));
    assert!(err.outcome_unknown());
    assert_eq!(script.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn it_reports_an_unreachable_service_after_its_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client =
        OrdersClient::with_policy(&format!("http://{address}"), "token", quick_policy(3)).unwrap();
    let err = client
        .checkout_with_key("k-1", &[line("A", 1)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
}

// --- every checkout ends in a known outcome -------------------------------

#[tokio::test]
async fn when_every_answer_is_lost_the_client_settles_the_key_and_returns_the_order() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    // Every checkout commits, and its answer never arrives.
    let proxy = CheckoutProxy::start(
        app.address,
        Faults {
            lose_checkouts: usize::MAX,
            ..Faults::default()
        },
    )
    .await;
    let client = OrdersClient::with_policy(
        &proxy.url(),
        &app.customer("acme", "cust-1"),
        quick_policy(3),
    )
    .unwrap();
    let placed = client.checkout(&[line("A", 2)], None).await.unwrap();
    assert!(
        placed.replayed,
        "found placed by an attempt whose answer was lost"
    );
    assert_eq!(placed.attempts, 3);
    assert_eq!(proxy.checkouts.load(Ordering::SeqCst), 3);
    assert_eq!(
        placed.order.idempotency_key.as_deref(),
        Some(placed.idempotency_key.as_str())
    );
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM store_checkout_abandonments")
            .await,
        0,
        "settling a placed key changes nothing"
    );
    assert_eq!(app.on_hand("acme", "A").await, 8);
}

#[tokio::test]
async fn when_no_checkout_gets_through_the_client_abandons_the_key_and_says_not_placed() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    // A gateway answers every checkout 503; nothing reaches the service.
    let proxy = CheckoutProxy::start(
        app.address,
        Faults {
            unavailable_checkouts: usize::MAX,
            ..Faults::default()
        },
    )
    .await;
    let token = app.customer("acme", "cust-1");
    let client = OrdersClient::with_policy(&proxy.url(), &token, quick_policy(3)).unwrap();
    let err = client.checkout(&[line("A", 2)], None).await.unwrap_err();
    let ClientError::NotPlaced {
        idempotency_key,
        attempts,
        checkout,
    } = err
    else {
        panic!("expected NotPlaced, got {err:?}")
    };
    assert_eq!(attempts, 3);
    assert_eq!(checkout.state, CheckoutState::Abandoned);
    assert_eq!(checkout.idempotency_key, idempotency_key);
    // For good: the same checkout, sent straight to the service, stores
    // nothing.
    let direct = OrdersClient::with_policy(&app.base_url, &token, quick_policy(1)).unwrap();
    let late = direct
        .checkout_with_key(&idempotency_key, &[line("A", 2)], None)
        .await
        .unwrap_err();
    assert_eq!(late.problem_kind(), Some(ProblemKind::CheckoutAbandoned));
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 0);
    assert_eq!(app.on_hand("acme", "A").await, 10);
    let status = direct.checkout_status(&idempotency_key).await.unwrap();
    assert_eq!(status.map(|s| s.state), Some(CheckoutState::Abandoned));
}

#[tokio::test]
async fn when_settling_gets_no_answer_either_the_outcome_is_unknown_and_the_key_is_given() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client =
        OrdersClient::with_policy(&format!("http://{address}"), "token", quick_policy(2)).unwrap();
    let err = client.checkout(&[line("A", 1)], None).await.unwrap_err();
    let ClientError::OutcomeUnknown {
        idempotency_key,
        checkout,
        settling,
    } = &err
    else {
        panic!("expected OutcomeUnknown, got {err:?}")
    };
    assert!(uuid::Uuid::try_parse(idempotency_key).is_ok());
    assert!(matches!(
        **checkout,
        ClientError::Unreachable { attempts: 2, .. }
    ));
    assert!(matches!(
        **settling,
        ClientError::Unreachable { attempts: 2, .. }
    ));
    assert!(err.outcome_unknown());
    assert!(err.to_string().contains(idempotency_key.as_str()), "{err}");
}

#[tokio::test]
async fn checkout_with_key_never_abandons_its_key() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    let proxy = CheckoutProxy::start(
        app.address,
        Faults {
            unavailable_checkouts: usize::MAX,
            ..Faults::default()
        },
    )
    .await;
    let token = app.customer("acme", "cust-1");
    let client = OrdersClient::with_policy(&proxy.url(), &token, quick_policy(2)).unwrap();
    let err = client
        .checkout_with_key("kept-key", &[line("A", 1)], None)
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err:?}");
    assert!(
        matches!(
            err,
            ClientError::Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0,
        "no abandonment"
    );
    // The caller retries later, when the service answers: its order.
    let direct = OrdersClient::with_policy(&app.base_url, &token, quick_policy(1)).unwrap();
    let placed = direct
        .checkout_with_key("kept-key", &[line("A", 1)], None)
        .await
        .unwrap();
    assert!(!placed.replayed);
}

#[tokio::test]
async fn the_client_reads_and_settles_any_key_even_those_that_cannot_be_a_path_segment() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    let client = OrdersClient::with_policy(
        &app.base_url,
        &app.customer("acme", "cust-1"),
        quick_policy(1),
    )
    .unwrap();
    for key in [".", "..", "a/b", "a b?#", "%2E", "abandon"] {
        if key.contains(' ') {
            let err = client.abandon_checkout(key).await.unwrap_err();
            assert_eq!(err.problem_kind(), Some(ProblemKind::IdempotencyKeyInvalid));
            continue;
        }
        assert_eq!(client.checkout_status(key).await.unwrap(), None, "{key}");
        let settled = client.abandon_checkout(key).await.unwrap();
        assert_eq!(settled.idempotency_key, key);
        assert_eq!(settled.state, CheckoutState::Abandoned);
        assert_eq!(client.checkout_status(key).await.unwrap(), Some(settled));
    }
    let placed = client
        .checkout_with_key("x/y", &[line("A", 1)], None)
        .await
        .unwrap();
    let status = client.checkout_status("x/y").await.unwrap().unwrap();
    assert_eq!(status.order, Some(placed.order));
}
