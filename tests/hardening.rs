//! The findings of the security review (issue 11), each a test that failed
//! before its fix: bounded metric labels, slow and idle connections, forged
//! cursors, control characters in a staff token, the write path's
//! search_path, the service's database rights and session timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use order_service::{Role, ServeOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use store_orders_tests::app::{json, problem, AppOptions};
use store_orders_tests::fixtures::*;
use store_orders_tests::{TestApp, TestDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn invented_methods_do_not_create_metric_series() {
    let app = TestApp::spawn().await;
    for i in 0..20 {
        let method = Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        let _ = app
            .http
            .request(method, format!("{}/healthz", app.base_url))
            .send()
            .await
            .unwrap();
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("FOO"), "a series per invented method");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_requests_total") && l.contains("method=\"other\"")),
        "invented methods are counted as other"
    );
}

/// Whether the server has closed `stream` (EOF or reset) by `deadline`.
async fn closed_by(stream: &mut (impl AsyncReadExt + Unpin), deadline: Instant) -> bool {
    let mut buffer = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar answer before closing: keep reading.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_idle_connections_are_closed_and_cannot_starve_a_fresh_request() {
    let app = TestApp::spawn_with(AppOptions {
        serve: ServeOptions {
            header_timeout: Duration::from_secs(1),
            max_connections: 40,
            ..ServeOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    // More slow connections than the limit: half send part of a request
    // head and then a header line every 300 ms, half send nothing.
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for i in 0..60 {
        let (reader, mut writer) = TcpStream::connect(app.address).await.unwrap().into_split();
        if i % 2 == 0 {
            writer
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            writers.push(writer);
        }
        readers.push(reader);
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for writer in &mut writers {
                let _ = writer.write_all(b"X-Slow: 1\r\n").await;
            }
        }
    });
    let started = Instant::now();
    let fresh = reqwest::Client::new()
        .get(format!("{}/healthz", app.base_url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("a fresh request is answered");
    let waited = started.elapsed();
    eprintln!("fresh request answered after {waited:?} with 60 slow connections open");
    assert_eq!(fresh.status(), StatusCode::OK);
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut still_open = 0;
    for reader in &mut readers {
        if !closed_by(reader, deadline).await {
            still_open += 1;
        }
    }
    trickle.abort();
    assert_eq!(still_open, 0, "every slow or idle connection was closed");
}

/// Reads `stream` until the server closes it (EOF or reset) or `limit`
/// passes: what arrived, and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (received, false);
        }
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (received, false),
        }
    }
}

fn answers_in(received: &[u8]) -> usize {
    received
        .windows(b"HTTP/1.1 ".len())
        .filter(|w| *w == b"HTTP/1.1 ")
        .count()
}

/// A client that pipelines requests for large answers and never reads
/// them: once an answer has waited a second (the write timeout) the
/// connection is closed, and the answers still owed are never produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_pipelines_and_never_reads_is_disconnected_after_the_write_timeout() {
    let app = TestApp::spawn_with(AppOptions {
        serve: ServeOptions {
            write_timeout: Duration::from_secs(1),
            max_requests_per_connection: 10_000,
            ..ServeOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let document = app
        .http
        .get(format!("{}/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    // Far more answer bytes than the sockets' buffers hold.
    let requests = (64 * 1024 * 1024 / document).max(50);
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
    socket.write_all(&request).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (received, closed) = read_until_closed(&mut socket, Duration::from_secs(20)).await;
    let answered = answers_in(&received);
    eprintln!(
        "{requests} pipelined requests for {document} bytes each: {answered} answers, {} bytes, then closed: {closed}",
        received.len()
    );
    assert!(
        closed,
        "the connection of a client that does not read is closed"
    );
    assert!(answered < requests, "{answered} of {requests} answered");
    // The service itself is fine.
    let health = app
        .http
        .get(format!("{}/healthz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// At most `max_requests_per_connection` answers on one connection: the
/// last says `Connection: close`, pipelined requests after it are not
/// answered, and the connection is closed.
#[tokio::test]
async fn a_connection_answers_at_most_its_bound_of_requests_then_closes() {
    let app = TestApp::spawn_with(AppOptions {
        serve: ServeOptions {
            max_requests_per_connection: 5,
            ..ServeOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let mut socket = TcpStream::connect(app.address).await.unwrap();
    socket
        .write_all(&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8))
        .await
        .unwrap();
    let (received, closed) = read_until_closed(&mut socket, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&received).to_ascii_lowercase();
    assert!(closed, "{text}");
    assert_eq!(answers_in(&received), 5, "{text}");
    let last = &text[text.rfind("http/1.1 ").unwrap()..];
    assert!(last.contains("connection: close"), "{last}");
    assert_eq!(
        text.matches("connection: close").count(),
        1,
        "only the last answer closes: {text}"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_idle_past_the_header_timeout_is_closed() {
    let app = TestApp::spawn_with(AppOptions {
        serve: ServeOptions {
            header_timeout: Duration::from_millis(500),
            max_connections: 100,
            ..ServeOptions::default()
        },
        ..AppOptions::default()
    })
    .await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    // Now idle, kept alive: closed after the timeout, not kept forever.
    assert!(closed_by(&mut stream, Instant::now() + Duration::from_secs(3)).await);
}

#[tokio::test]
async fn cursors_the_service_did_not_issue_answer_400() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 100, 10).await;
    let token = app.customer("acme", "c");
    for i in 0..3 {
        let placed = app
            .checkout(
                &token,
                &format!("k-{i}"),
                json!({"lines": [{"sku": "A", "quantity": 1}]}),
            )
            .await;
        assert_eq!(placed.status(), StatusCode::CREATED);
    }
    // The old cursor format, decoding to a year PostgreSQL cannot hold.
    let year_minus_200000 = data_encoding::BASE64URL_NOPAD
        .encode(b"-6311347200000000000:00000000000000000000000000000000");
    for after in [year_minus_200000.as_str(), "", "abc", "a.b", "%00"] {
        let response = app.get(&format!("/v1/orders?after={after}"), &token).await;
        let body = problem(response, StatusCode::BAD_REQUEST, "invalid-query").await;
        assert_eq!(body["field"], "after", "{body}");
    }
    let response = app.get("/v1/orders?status=", &token).await;
    problem(response, StatusCode::BAD_REQUEST, "invalid-query").await;
    // A cursor the service issued pages on.
    let first = json(app.get("/v1/orders?limit=2", &token).await, StatusCode::OK).await;
    let next = first["next"].as_str().unwrap();
    let second = json(
        app.get(&format!("/v1/orders?limit=2&after={next}"), &token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["orders"].as_array().unwrap().len(), 1);
    // The products' cursors are sealed too.
    let staff = app.staff("acme");
    let response = app.get("/v1/products?after=A", &staff).await;
    problem(response, StatusCode::BAD_REQUEST, "invalid-query").await;
}

#[tokio::test]
async fn a_token_whose_sub_holds_control_characters_is_refused_and_stores_nothing() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 100, 10).await;
    for sub in ["staff\u{0}1", "line\nbreak", "bell\u{7}", ""] {
        for role in [Role::Staff, Role::Customer] {
            let token = app.token("acme", sub, role);
            let response = app
                .checkout(&token, "k", json!({"lines": [{"sku": "A", "quantity": 1}]}))
                .await;
            problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
            let response = app
                .request(Method::PUT, "/v1/products/B", &token)
                .json(&json!({"name": "B", "unit_price": 1, "currency": "PYG"}))
                .send()
                .await
                .unwrap();
            problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        }
    }
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE aggregate_type <> 'Product' AND event_type <> 'StockAdjusted'")
            .await,
        0
    );
}

/// A same-named table earlier in the caller's search_path must not receive
/// the write path's writes.
#[tokio::test]
async fn the_write_path_writes_its_own_tables_whatever_the_callers_search_path() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 10).await;
    sqlx::raw_sql(
        "CREATE SCHEMA decoy; \
         CREATE TABLE decoy.events (LIKE public.events INCLUDING DEFAULTS); \
         CREATE TABLE decoy.store_orders (LIKE public.store_orders INCLUDING ALL); \
         CREATE TABLE decoy.inventory (LIKE public.inventory INCLUDING ALL); \
         CREATE TABLE decoy.store_checkout_abandonments \
             (LIKE public.store_checkout_abandonments INCLUDING ALL); \
         INSERT INTO decoy.inventory SELECT * FROM public.inventory;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let decoyed = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db.options().options([("search_path", "decoy,public")]))
        .await
        .unwrap();
    let commands = order_store::OrderCommands::new(decoyed);
    let placed = commands
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 2)]))
        .await
        .unwrap();
    assert_eq!(placed.outcome, order_store::CheckoutOutcome::Created);
    let settled = commands
        .abandon_checkout(&as_customer("acme", "c"), &key("gone"), now())
        .await
        .unwrap();
    assert!(settled.abandoned_now);
    for (table, public, decoy) in [
        (
            "events",
            "SELECT count(*) FROM public.events WHERE event_type = 'OrderPlaced'",
            "SELECT count(*) FROM decoy.events",
        ),
        (
            "store_orders",
            "SELECT count(*) FROM public.store_orders",
            "SELECT count(*) FROM decoy.store_orders",
        ),
        (
            "store_checkout_abandonments",
            "SELECT count(*) FROM public.store_checkout_abandonments",
            "SELECT count(*) FROM decoy.store_checkout_abandonments",
        ),
    ] {
        assert_eq!(db.count(public).await, 1, "{table}");
        assert_eq!(db.count(decoy).await, 0, "{table}");
    }
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 8);
}

/// The service's role may append and read, and nothing else: not rewrite or
/// truncate the history, not disable the append-only trigger, not change
/// the schema.
#[tokio::test]
async fn the_service_role_cannot_rewrite_history_or_change_the_schema() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 10).await;
    let mut service = PgConnection::connect_with(&db.service_options().await)
        .await
        .unwrap();
    // What it must be able to do: a checkout, as the service.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db.service_options().await)
        .await
        .unwrap();
    order_store::OrderCommands::new(pool)
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 1)]))
        .await
        .unwrap();
    for forbidden in [
        "ALTER TABLE events DISABLE TRIGGER events_append_only_rows",
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "TRUNCATE events",
        "TRUNCATE store_orders",
        "DELETE FROM store_orders",
        "UPDATE events SET payload = '{}'",
        "DROP TABLE inventory",
        "CREATE TABLE intruder (id int)",
        "CREATE FUNCTION intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ] {
        let err = sqlx::query(forbidden)
            .execute(&mut service)
            .await
            .expect_err(forbidden);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert!(
            matches!(code.as_deref(), Some("42501" | "P0001" | "23001")),
            "{forbidden}: {err}"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_services_sessions_time_out_statements_and_idle_transactions() {
    let db = TestDatabase::new().await;
    let config = order_service::config::DatabaseConfig {
        url: db.url(),
        pool_size: 1,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_millis(1_500),
    };
    let pool = config.pool().unwrap();
    let (statement, idle): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), \
                current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((statement.as_str(), idle.as_str()), ("1500ms", "1500ms"));
    // And they act: a statement running past it is cancelled...
    let started = Instant::now();
    let slow = sqlx::query("SELECT pg_sleep(10)").execute(&pool).await;
    let took = started.elapsed();
    assert!(
        matches!(&slow, Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014")),
        "{slow:?}"
    );
    assert!(took < Duration::from_secs(5), "cancelled after {took:?}");
    // ...and a transaction left idle past it loses its session.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after_idle = sqlx::query("SELECT 1").execute(&mut *conn).await;
    assert!(
        after_idle.is_err(),
        "the idle transaction's session survived"
    );
}

/// The JWT secret never travels on a command line (the process list shows
/// those): `--jwt-secret` is refused; it comes from ORDERS_JWT_SECRET or
/// from the file ORDERS_JWT_SECRET_FILE names (a trailing newline ignored);
/// with neither, a clear error.
#[test]
fn the_jwt_secret_comes_from_the_environment_or_a_file_never_an_argument() {
    let service = env!("CARGO_BIN_EXE_order-service-under-test");
    let secret = "file-secret-file-secret-file-secret-0123";
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(service);
        command
            .args(["token", "--tenant", "acme", "--sub", "c"])
            .args(args)
            .env_remove("ORDERS_JWT_SECRET")
            .env_remove("ORDERS_JWT_SECRET_FILE");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let refused = run(&["--jwt-secret", secret], &[]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--jwt-secret"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let missing = run(&[], &[]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("ORDERS_JWT_SECRET_FILE"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let file = std::env::temp_dir().join(format!("jwt-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let minted = run(&[], &[("ORDERS_JWT_SECRET_FILE", file.to_str().unwrap())]);
    std::fs::remove_file(&file).ok();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    let keys = order_service::JwtKeys::new(secret.as_bytes()).unwrap();
    let claims = keys.verify(&token).unwrap();
    assert_eq!(claims.sub, "c");
    let from_env = run(&[], &[("ORDERS_JWT_SECRET", secret)]);
    assert!(from_env.status.success());
}
