//! Hostile input: every malformed, oversized, or malicious request answers a
//! 4xx problem (never a 5xx, never a panic) and stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use order_service::Role;
use proptest::prelude::*;
use serde_json::{json, Value};
use store_orders_tests::app::{router, token_for};
use store_orders_tests::fixtures::stocked_product;
use store_orders_tests::TestDatabase;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A 4xx problem document of the given status (400 or 422 when 0) and
    /// slug (any when empty).
    fn assert_problem(&self, status: u16, slug: &str) {
        let body = String::from_utf8_lossy(&self.body);
        if status == 0 {
            assert!(matches!(self.status.as_u16(), 400 | 422), "{body}");
        } else {
            assert_eq!(self.status.as_u16(), status, "{body}");
        }
        assert_eq!(self.content_type, "application/problem+json", "{body}");
        let problem = self.json();
        if !slug.is_empty() {
            assert_eq!(problem["type"], format!("/problems/{slug}"), "{body}");
        }
        assert!(problem["detail"].is_string(), "{body}");
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

fn checkout(key: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/checkout")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token_for("acme", "cust-1", Role::Customer)),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(body.into())
        .unwrap()
}

async fn shop() -> (TestDatabase, Router) {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 10).await;
    let app = router(&db).await;
    (db, app)
}

async fn nothing_stored(db: &TestDatabase) {
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 0);
    assert_eq!(
        store_orders_tests::fixtures::on_hand(&db.pool, "acme", "A").await,
        10
    );
}

#[tokio::test]
async fn malformed_json_answers_400_and_wrong_shapes_answer_422() {
    let (db, app) = shop().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"lines\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "truncated",
            br#"{"lines": [{"sku": "A", "quan"#.to_vec(),
            400,
            "malformed-body",
        ),
        ("empty", b"".to_vec(), 400, "malformed-body"),
        (
            "trailing garbage",
            br#"{"lines": []} x"#.to_vec(),
            400,
            "malformed-body",
        ),
        (
            "invalid UTF-8",
            b"{\"lines\": [{\"sku\": \"\xff\xfe\", \"quantity\": 1}]}".to_vec(),
            400,
            "malformed-body",
        ),
        // Either refused where the shape first goes wrong (422) or at
        // serde_json's recursion limit (400): never parsed 10,000 deep.
        ("10,000 levels of nesting", deep.into_bytes(), 0, ""),
        (
            "10,000 levels inside a field",
            deep_object.into_bytes(),
            0,
            "",
        ),
        ("not an object", b"[1, 2, 3]".to_vec(), 422, "invalid-body"),
        ("a string", b"\"checkout\"".to_vec(), 422, "invalid-body"),
        ("null", b"null".to_vec(), 422, "invalid-body"),
        (
            "lines not a list",
            br#"{"lines": {"sku": "A"}}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "quantity as text",
            br#"{"lines": [{"sku": "A", "quantity": "1"}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "quantity beyond i64",
            br#"{"lines": [{"sku": "A", "quantity": 99999999999999999999999}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "quantity negative",
            br#"{"lines": [{"sku": "A", "quantity": -1}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            // (A whole number in any notation, 1e3 or 2.0, is that number.)
            "quantity with a fraction",
            br#"{"lines": [{"sku": "A", "quantity": 2.5e0}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "sku with NUL",
            br#"{"lines": [{"sku": "A\u0000", "quantity": 1}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "note with NUL",
            br#"{"lines": [{"sku": "A", "quantity": 1}], "note": "hi\u0000there"}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "sku as SQL",
            br#"{"lines": [{"sku": "A'; DROP TABLE events; --", "quantity": 1}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "sku as a path",
            br#"{"lines": [{"sku": "../../etc/passwd", "quantity": 1}]}"#.to_vec(),
            422,
            "invalid-body",
        ),
        (
            "note not text",
            br#"{"lines": [{"sku": "A", "quantity": 1}], "note": 5}"#.to_vec(),
            422,
            "invalid-body",
        ),
    ];
    for (what, body, status, slug) in cases {
        let answer = send(&app, checkout("k", body)).await;
        eprintln!("{what}: {}", answer.status);
        answer.assert_problem(status, slug);
    }
    nothing_stored(&db).await;
}

#[tokio::test]
async fn oversized_bodies_answer_413_before_being_read_whole() {
    let (db, app) = shop().await;
    let megabyte = json!({"lines": [{"sku": "A", "quantity": 1}], "note": "x".repeat(1024 * 1024)})
        .to_string();
    send(&app, checkout("k", megabyte))
        .await
        .assert_problem(413, "payload-too-large");
    let many_lines = json!({"lines": (0..100_000).map(|i| json!({"sku": format!("S{i}"), "quantity": 1})).collect::<Vec<_>>()});
    send(&app, checkout("k", many_lines.to_string()))
        .await
        .assert_problem(413, "payload-too-large");
    nothing_stored(&db).await;
}

#[tokio::test]
async fn unknown_fields_are_ignored_as_documented() {
    let (db, app) = shop().await;
    let body = json!({"lines": [{"sku": "A", "quantity": 1, "unit_price": 1, "colour": "red"}], "coupon": "FREE", "total": 0});
    let answer = send(&app, checkout("k", body.to_string())).await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["total"], 100);
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 1);
}

#[tokio::test]
async fn hostile_idempotency_keys_are_refused_or_stored_verbatim_and_harmless() {
    let (db, app) = shop().await;
    let body = json!({"lines": [{"sku": "A", "quantity": 1}]}).to_string();
    let long = "k".repeat(256);
    for bad in [
        "",
        long.as_str(),
        "has space",
        "tab\tinside",
        "\"has space\"",
    ] {
        send(&app, checkout(bad, body.clone()))
            .await
            .assert_problem(400, "idempotency-key-invalid");
    }
    let non_ascii = Request::post("/v1/checkout")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token_for("acme", "c", Role::Customer)),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes("ключ".as_bytes()).unwrap(),
        )
        .body(Body::from(body.clone()))
        .unwrap();
    send(&app, non_ascii)
        .await
        .assert_problem(400, "idempotency-key-invalid");
    nothing_stored(&db).await;
    // Visible ASCII that looks like SQL or a path is a key like any other:
    // stored verbatim, bound as a parameter, harmless.
    // So is a quoted string that is not a valid RFC 8941 string: the
    // contract's keys are any visible ASCII.
    for key in [
        "';DROP/**/TABLE/**/events;--",
        "../../../etc/passwd",
        "$(reboot)",
        "\"unterminated",
        "\"bad\\escape\"",
    ] {
        let answer = send(&app, checkout(key, body.clone())).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        assert_eq!(answer.json()["idempotency_key"], key);
    }
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        5
    );
}

#[tokio::test]
async fn hostile_identifiers_in_paths_answer_404() {
    let (_db, app) = shop().await;
    let token = format!("Bearer {}", token_for("acme", "staff", Role::Staff));
    for path in [
        "/v1/orders/not-a-uuid",
        "/v1/orders/..%2F..%2Fetc%2Fpasswd",
        "/v1/orders/1'%20OR%20'1'='1",
        "/v1/orders/00000000-0000-0000-0000-000000000000",
        "/v1/products/..%2Fsecret",
        "/v1/products/A';--",
    ] {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, &token)
            .body(Body::empty())
            .unwrap();
        send(&app, request).await.assert_problem(404, "not-found");
    }
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map("[a-z_]{1,10}|lines|sku|quantity|note", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies shaped like checkouts, with hostile contents: they get past the
/// JSON layer and into validation, pricing and the store.
fn near_checkout() -> impl Strategy<Value = Value> {
    let sku = prop_oneof!["A", "[A-Za-z0-9._-]{1,64}", ".{0,70}"];
    let quantity = prop_oneof![
        (-5_i64..20_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!("2")),
    ];
    let line =
        (sku, quantity).prop_map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity}));
    (
        prop::collection::vec(line, 0..5),
        prop::option::of(".{0,30}"),
    )
        .prop_map(|(lines, note)| match note {
            Some(note) => json!({"lines": lines, "note": note}),
            None => json!({"lines": lines}),
        })
}

fn assert_never_5xx(
    runtime: &tokio::runtime::Runtime,
    app: &Router,
    key: &str,
    body: Vec<u8>,
) -> Result<(), TestCaseError> {
    let answer = runtime.block_on(send(app, checkout(key, body)));
    prop_assert!(
        answer.status.as_u16() < 500,
        "{} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    if answer.status.is_client_error() {
        prop_assert_eq!(&answer.content_type, "application/problem+json");
        prop_assert!(answer.json()["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")));
    } else {
        prop_assert!(answer.json()["id"].is_string(), "a 2xx carries an order");
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_and_json_never_get_a_5xx_and_errors_are_problems() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, app) = runtime.block_on(shop());
    let config = ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |bytes| {
            assert_never_5xx(&runtime, &app, "bytes", bytes)
        })
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&arbitrary_json(), |value| {
            assert_never_5xx(&runtime, &app, "json", value.to_string().into_bytes())
        })
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&(near_checkout(), "[!-~]{1,20}"), |(value, key)| {
            assert_never_5xx(&runtime, &app, &key, value.to_string().into_bytes())
        })
        .unwrap();
    drop(app);
    runtime.block_on(async move { drop(db) });
}

/// Writes `request` on a fresh connection to the service and reads what
/// comes back until the server closes it or stays silent for a second.
async fn over_a_socket(address: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer (and close) before taking all of it.
    let _ = socket.write_all(request).await;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(1), socket.read(&mut buffer))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

/// An answer given before the request's body was read (a 413 for a body
/// over the limit, a 401 before a checkout's body) says `Connection:
/// close`, so that a keep-alive client does not send its next request on a
/// connection the server is closing; an answer after the whole body keeps
/// the connection open for the next request.
#[tokio::test]
async fn an_answer_before_the_body_was_read_says_the_connection_closes() {
    let app = store_orders_tests::TestApp::spawn().await;
    app.product("acme", "A", 1_000, 10).await;
    let token = app.customer("acme", "c");
    let head = |length: usize, auth: &str| {
        format!(
            "POST /v1/checkout HTTP/1.1\r\nhost: shop\r\n{auth}idempotency-key: k-{length}\r\n\
             content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
        )
    };
    let mut oversized =
        head(1024 * 1024, &format!("authorization: Bearer {token}\r\n")).into_bytes();
    oversized.extend(std::iter::repeat_n(b'x', 100 * 1024));
    let answer = over_a_socket(app.address, &oversized).await;
    assert!(answer.starts_with("http/1.1 413"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    let body = r#"{"lines":[{"sku":"A","quantity":1}]}"#;
    let mut unauthenticated = head(body.len(), "").into_bytes();
    unauthenticated.extend_from_slice(body.as_bytes());
    let answer = over_a_socket(app.address, &unauthenticated).await;
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    // Read whole: the connection serves a next request.
    let mut two = head(body.len(), &format!("authorization: Bearer {token}\r\n")).into_bytes();
    two.extend_from_slice(body.as_bytes());
    two.extend_from_slice(b"GET /healthz HTTP/1.1\r\nhost: shop\r\n\r\n");
    let answer = over_a_socket(app.address, &two).await;
    assert!(answer.starts_with("http/1.1 201"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("http/1.1 ").count(), 2, "{answer}");
}
