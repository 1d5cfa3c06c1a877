//! Authentication failures, request ids, health, readiness, metrics and the
//! OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use store_orders_tests::app::{json, problem, SECRET};
use store_orders_tests::TestApp;

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

fn signed(header: &Header, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn claims(tenant: &str, role: &str, exp_offset: i64) -> Value {
    json!({"sub": "cust-1", "tenant": tenant, "role": role, "exp": Utc::now().timestamp() + exp_offset})
}

/// A token whose header says `alg` but whose signature is HMAC-SHA256 with
/// the service's secret: algorithm confusion.
fn confused(alg: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

#[tokio::test]
async fn requests_without_a_valid_token_answer_401_problems() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 10, 10).await;
    let hs256 = Header::new(Algorithm::HS256);
    let good = claims("acme", "customer", 3_600);
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good.to_string().as_bytes())
    );
    let mut not_yet = good.clone();
    not_yet["nbf"] = json!(Utc::now().timestamp() + 3_600);
    let bad_tokens = [
        ("garbage", "not.a.jwt".to_owned()),
        ("alg none", unsigned),
        ("RS256 header, HMAC signature", confused("RS256", &good)),
        (
            "HS512",
            signed(&Header::new(Algorithm::HS512), &good, SECRET),
        ),
        (
            "wrong secret",
            signed(&hs256, &good, "another-secret-another-secret-0123456"),
        ),
        (
            "expired",
            signed(&hs256, &claims("acme", "customer", -3_600), SECRET),
        ),
        ("not yet valid", signed(&hs256, &not_yet, SECRET)),
        (
            "no exp",
            signed(
                &hs256,
                &json!({"sub": "c", "tenant": "acme", "role": "customer"}),
                SECRET,
            ),
        ),
        (
            "no tenant",
            signed(
                &hs256,
                &json!({"sub": "c", "role": "customer", "exp": Utc::now().timestamp() + 60}),
                SECRET,
            ),
        ),
        (
            "bad tenant",
            signed(&hs256, &claims("Acme Corp", "customer", 3_600), SECRET),
        ),
        (
            "role admin",
            signed(&hs256, &claims("acme", "admin", 3_600), SECRET),
        ),
        (
            "role list",
            signed(
                &hs256,
                &json!({"sub": "c", "tenant": "acme", "role": ["staff"], "exp": Utc::now().timestamp() + 60}),
                SECRET,
            ),
        ),
    ];
    for (what, token) in bad_tokens {
        let response = app.get("/v1/orders", &token).await;
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().starts_with("Bearer")),
            Some(true),
            "{what}"
        );
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    let anonymous = app
        .http
        .get(format!("{}/v1/orders", app.base_url))
        .send()
        .await
        .unwrap();
    problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let basic = app
        .http
        .get(format!("{}/v1/orders", app.base_url))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    problem(basic, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let huge = app
        .http
        .get(format!("{}/v1/orders", app.base_url))
        .header("authorization", format!("Bearer {}", "x".repeat(16 * 1024)))
        .send()
        .await
        .unwrap();
    problem(huge, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
    let forged = signed(
        &hs256,
        &claims("acme", "staff", 3_600),
        "another-secret-another-secret-0123456",
    );
    problem(
        app.checkout(&forged, "k", body).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(app.on_hand("acme", "A").await, 10);
}

#[tokio::test]
async fn the_tenant_comes_from_the_token_only() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 10, 10).await;
    app.product("zeta", "A", 10, 10).await;
    let zeta_customer = app.customer("zeta", "c");
    let response = app
        .request(Method::POST, "/v1/checkout?tenant=acme", &zeta_customer)
        .header("idempotency-key", "k")
        .header("x-tenant", "acme")
        .json(&json!({"lines": [{"sku": "A", "quantity": 1}], "tenant": "acme"}))
        .send()
        .await
        .unwrap();
    json(response, StatusCode::CREATED).await;
    assert_eq!(
        (
            app.on_hand("acme", "A").await,
            app.on_hand("zeta", "A").await
        ),
        (10, 9)
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_echoed_when_the_client_sent_a_sane_one() {
    let app = TestApp::spawn().await;
    let echoed = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");
    let generated = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
    let oversized = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "r".repeat(300))
        .send()
        .await
        .unwrap();
    assert_ne!(
        oversized.headers()["x-request-id"].to_str().unwrap(),
        "r".repeat(300)
    );
    let p = problem(
        app.http
            .get(format!("{}/v1/orders", app.base_url))
            .header("x-request-id", "req-401")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(p["request_id"], "req-401");
    // Outside the contract's alphabet: replaced, and the replacement (never
    // the client's) is what the order's event records.
    app.product("acme", "A", 1_000, 10).await;
    let odd = "<img/src=x>";
    let placed = app
        .request(Method::POST, "/v1/checkout", &app.customer("acme", "c"))
        .header("idempotency-key", "request-id-check")
        .header("x-request-id", odd)
        .json(&serde_json::json!({"lines": [{"sku": "A", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);
    let replacement = placed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::try_parse(&replacement).is_ok(), "{replacement}");
    let recorded: String = sqlx::query_scalar(
        "SELECT metadata->>'request_id' FROM events \
         WHERE tenant_id = 'acme' AND idempotency_key = 'request-id-check'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, replacement);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_problems_too() {
    let app = TestApp::spawn().await;
    let token = app.staff("acme");
    problem(
        app.get("/v2/orders", &token).await,
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    problem(
        app.request(Method::DELETE, "/v1/checkout", &token)
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    )
    .await;
}

#[tokio::test]
async fn health_and_readiness_report_the_database_migrations_and_projector() {
    let app = TestApp::spawn().await;
    let health = json(
        app.http
            .get(format!("{}/healthz", app.base_url))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(health["status"], "ok");
    let ready = json(
        app.http
            .get(format!("{}/readyz", app.base_url))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["migrations"], "applied");
    assert_eq!(ready["projector"]["running"], true);
    assert_eq!(ready["projector"]["mode"], "inline");
    assert_eq!(ready["projector"]["lag_events"], 0, "projected inline");
    assert!(ready["commit_order"]["held_back_events"].as_i64().is_some());
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_commands_by_outcome() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 10, 10).await;
    let token = app.customer("acme", "c");
    let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
    json(
        app.checkout(&token, "k", body.clone()).await,
        StatusCode::CREATED,
    )
    .await;
    json(app.checkout(&token, "k", body).await, StatusCode::OK).await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for expected in [
        r#"http_requests_total{route="/v1/checkout",method="POST",status="201"}"#,
        r#"http_requests_total{route="/v1/checkout",method="POST",status="200"}"#,
        r#"http_request_duration_seconds_bucket{route="/v1/checkout",method="POST",status="201",le="0.01"}"#,
        r#"orders_commands_total{command="checkout",outcome="created"}"#,
        r#"orders_commands_total{command="checkout",outcome="replayed"}"#,
        "orders_projector_lag_events",
        "orders_projector_lag_seconds",
        "orders_commit_order_held_back_events",
        "orders_commit_order_held_back_seconds",
        "orders_events_applied_total",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_every_route() {
    let app = TestApp::spawn().await;
    let doc = json(
        app.http
            .get(format!("{}/openapi.json", app.base_url))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    // docs/openapi.json, beside the contract (docs/API.md), is this very
    // document: a change to the API changes the committed file in the same
    // commit, or this fails.
    let committed_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let served = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(committed_path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json is not the document the service serves; rewrite it with \
         UPDATE_OPENAPI=1 cargo test --test http_auth_and_operations the_openapi_document"
    );
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("a well-formed OpenAPI document");
    let routes = [
        ("/v1/checkout", "post"),
        ("/v1/checkouts", "get"),
        ("/v1/checkouts/{key}", "get"),
        ("/v1/checkouts/{key}/abandon", "post"),
        ("/v1/checkouts/abandon", "post"),
        ("/v1/orders", "get"),
        ("/v1/orders/{id}", "get"),
        ("/v1/orders/{id}/cancel", "post"),
        ("/v1/orders/{id}/pay", "post"),
        ("/v1/orders/{id}/ship", "post"),
        ("/v1/products", "get"),
        ("/v1/products/{sku}", "put"),
        ("/v1/products/{sku}", "get"),
        ("/v1/products/{sku}/stock", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    ];
    for (path, method) in routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }
    assert_eq!(
        parsed.paths.paths.len(),
        17,
        "13 API paths and 4 operations paths"
    );
    for schema in [
        "Order",
        "Checkout",
        "CheckoutState",
        "CheckoutRequest",
        "Product",
        "OrderList",
        "Problem",
        "ProblemExtensions",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let checkout = &doc["paths"]["/v1/checkout"]["post"];
    for status in ["200", "201", "400", "401", "409", "413", "422", "503"] {
        assert!(
            checkout["responses"][status].is_object(),
            "checkout lacks {status}"
        );
    }
}

/// `/readyz` and `/metrics` answer anyone: their database probe is reused
/// for up to a second (a flood of probes costs one query a second), so a
/// change shows within a second, not at once.
#[tokio::test]
async fn readiness_reuses_its_database_probe_for_a_second() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 1_000, 100).await;
    let held = || async {
        let ready: Value = app
            .http
            .get(format!("{}/readyz", app.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ready["commit_order"]["held_back_events"].as_i64().unwrap()
    };
    let mut long = store_orders_tests::database::open_transaction(&app.db.options()).await;
    app.checkout(
        &app.customer("acme", "c"),
        "held",
        json!({"lines": [{"sku": "A", "quantity": 1}]}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        held().await,
        1,
        "one event held back by the open transaction"
    );
    sqlx::query("ROLLBACK").execute(&mut long).await.unwrap();
    assert_eq!(held().await, 1, "the probe of a moment ago, reused");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(held().await, 0, "asked again after a second");
}
