//! Faults, against real processes: the service killed mid-stream, the
//! database crashing under load, a connection cut between a commit and its
//! answer, a pool far too small for the load, and a long transaction holding
//! back the rebuild's horizon. Each scenario prints what it measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use order_api::CheckoutLine;
use order_client::{OrdersClient, RetryPolicy};
use order_service::Role;
use order_store::{GroupCommitSettings, OrderCommands};
use rebuild_projections::rebuild::{rebuild, RebuildMode, RebuildOptions};
use reqwest::StatusCode;
use serde_json::json;
use store_orders_tests::app::{token_for, AppOptions};
use store_orders_tests::commit_cutting_proxy::CommitCuttingProxy;
use store_orders_tests::fixtures::*;
use store_orders_tests::nats::eventually;
use store_orders_tests::own_cluster::OwnCluster;
use store_orders_tests::service_process::{ServiceProcess, ANY_PORT};
use store_orders_tests::{TestApp, TestDatabase};

const SERVICE: &str = env!("CARGO_BIN_EXE_order-service-under-test");

fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 100,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(250),
        max_total: Duration::from_secs(40),
        request_timeout: Duration::from_secs(3),
    }
}

/// The service's group-commit batches so far, from its /metrics: (batches,
/// appends in them).
async fn batches_stored(base: &str) -> (f64, f64) {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("orders_append_batch_size_count "),
        value("orders_append_batch_size_sum "),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_killed_mid_stream_leaves_every_key_with_exactly_one_order() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    stocked_product(&db.pool, "acme", "B", 100, 100_000).await;
    let env = [("ORDERS_SKIP_MIGRATIONS", "true")];
    let mut service = ServiceProcess::start(SERVICE, &db.url(), ANY_PORT, &env).await;
    // Restarted on the same port: the clients keep their address.
    let port = service.port;
    let base = service.base_url();
    let stats = Arc::new(Mutex::new((0_u32, 0_u32)));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (base, stats) = (base.clone(), stats.clone());
            tokio::spawn(async move {
                let token = token_for("acme", &format!("customer-{c}"), Role::Customer);
                let client = OrdersClient::with_policy(&base, &token, patient()).unwrap();
                let mut keys = Vec::new();
                for n in 0..50 {
                    let key = format!("crash-{c}-{n}");
                    let lines = [
                        CheckoutLine {
                            sku: "A".into(),
                            quantity: 1 + n % 2,
                        },
                        CheckoutLine {
                            sku: "B".into(),
                            quantity: 1,
                        },
                    ];
                    let placed = client
                        .checkout_with_key(&key, &lines, None)
                        .await
                        .expect("every checkout succeeds, across the crash");
                    assert_eq!(placed.order.idempotency_key.as_deref(), Some(key.as_str()));
                    let mut stats = stats.lock().unwrap();
                    stats.0 += u32::from(placed.attempts > 1);
                    stats.1 += u32::from(placed.replayed);
                    keys.push(key);
                }
                keys
            })
        })
        .collect();
    // Kill it mid-stream: once about a sixth of the orders are in.
    eventually(
        Duration::from_secs(60),
        "60 orders stored before the kill",
        || async { db.count("SELECT count(*) FROM store_orders").await >= 60 },
    )
    .await;
    // Killed while it stores checkouts in batches (group commit).
    let (batches, appends) = batches_stored(&base).await;
    assert!(
        appends > batches,
        "batches of several checkouts before the kill: {appends} appends in {batches} batches"
    );
    service.kill().await;
    let killed_at = Instant::now();
    let before_kill = db.count("SELECT count(*) FROM store_orders").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _restarted = ServiceProcess::start(SERVICE, &db.url(), port, &env).await;
    let back_after = killed_at.elapsed();
    let mut keys = Vec::new();
    for client in join_all(clients).await {
        keys.extend(client.unwrap());
    }
    let (retried, replayed) = *stats.lock().unwrap();
    eprintln!(
        "service SIGKILLed with {before_kill} orders stored, back after {back_after:?}; {} keys, {retried} checkouts needed retries, {replayed} answered as replays",
        keys.len()
    );
    assert!(
        before_kill > 0 && (before_kill as usize) < keys.len(),
        "the kill came mid-stream"
    );
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 400);
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders").await,
        400,
        "one order per key"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        400
    );
    let taken: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(quantity), 0)::bigint FROM store_order_items WHERE sku = 'A'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        taken,
        8 * (25 + 25 * 2),
        "the orders took what the clients asked, once"
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 100_000 - taken);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 100_000 - 400);
    assert_read_model_matches_events(&db.pool).await;
}

/// Acknowledged order ids, and the answers given while the database was
/// down: (status, whether a problem document, latency).
type OutageLog = (Vec<String>, Vec<(u16, bool, Duration)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_loses_no_acknowledged_order_and_the_service_recovers_by_itself() {
    let cluster = OwnCluster::start();
    let pool = cluster.migrated_database("shop").await;
    stocked_product(&pool, "acme", "A", 100, 1_000_000).await;
    let env = [
        ("ORDERS_DB_ACQUIRE_TIMEOUT", "500ms"),
        ("ORDERS_REQUEST_TIMEOUT", "3s"),
        ("ORDERS_DB_POOL_SIZE", "8"),
    ];
    let mut service = ServiceProcess::start(SERVICE, &cluster.url("shop"), ANY_PORT, &env).await;
    let base = service.base_url();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let token = token_for("acme", "c", Role::Customer);
    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<OutageLog>> = Arc::default();
    let shoppers: Vec<_> = (0..4)
        .map(|s| {
            let (http, base, token, stop, outage, log) = (
                http.clone(),
                base.clone(),
                token.clone(),
                stop.clone(),
                outage.clone(),
                log.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{base}/v1/checkout"))
                        .bearer_auth(&token)
                        .header("idempotency-key", format!("db-crash-{s}-{n}"))
                        .json(&json!({"lines": [{"sku": "A", "quantity": 1}]}))
                        .send()
                        .await
                        .expect("the service itself keeps answering");
                    let status = response.status().as_u16();
                    let problem = response
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v == "application/problem+json");
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    {
                        let mut log = log.lock().unwrap();
                        if status == 201 {
                            log.0.push(body["id"].as_str().unwrap().to_owned());
                        }
                        if outage.load(Ordering::SeqCst) {
                            log.1.push((status, problem, sent.elapsed()));
                        }
                    }
                    if status >= 500 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let acknowledged_before = log.lock().unwrap().0.len();
    cluster.stop_immediately();
    outage.store(true, Ordering::SeqCst);
    let mut ready_during_outage = Vec::new();
    for _ in 0..10 {
        let sent = Instant::now();
        let answer = http.get(format!("{base}/readyz")).send().await.unwrap();
        let status = answer.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Why the database failed is for the log, not for anyone who
            // asks: the readiness report says "unreachable" and no more (or,
            // on a machine too loaded to answer in the request's budget,
            // the timeout problem).
            let body: serde_json::Value = answer.json().await.unwrap();
            assert!(
                body["database"] == "unreachable" || body["type"] == "/problems/timeout",
                "{body}"
            );
        }
        ready_during_outage.push((status, sent.elapsed()));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    cluster.start_again();
    let restarted = Instant::now();
    let recovered = loop {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "the service did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    outage.store(false, Ordering::SeqCst);
    let acknowledged_at_recovery = log.lock().unwrap().0.len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    for shopper in shoppers {
        shopper.await.unwrap();
    }
    let (acknowledged, during) = log.lock().unwrap().clone();
    let ids: Vec<uuid::Uuid> = acknowledged.iter().map(|id| id.parse().unwrap()).collect();
    let pool = sqlx::PgPool::connect(&cluster.url("shop")).await.unwrap();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM store_orders WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&pool)
        .await
        .unwrap();
    let slowest = during.iter().map(|(_, _, t)| *t).max().unwrap_or_default();
    let unavailable = during.iter().filter(|(s, p, _)| *s == 503 && *p).count();
    eprintln!(
        "database crash: {} orders acknowledged ({acknowledged_before} before the crash), {found} found afterwards; \
         {} answers during the outage ({unavailable} were 503 problems, slowest {slowest:?}); /readyz during the outage: {:?}; \
         ready again {recovered:?} after the restart; {} more orders acknowledged after recovery",
        ids.len(),
        during.len(),
        ready_during_outage.iter().map(|(s, _)| s.as_u16()).collect::<Vec<_>>(),
        ids.len() - acknowledged_at_recovery,
    );
    assert_eq!(
        found as usize,
        ids.len(),
        "every acknowledged order survived the crash"
    );
    assert!(
        acknowledged_before > 0 && ids.len() > acknowledged_at_recovery,
        "orders were placed before and after"
    );
    assert!(
        service.is_running(),
        "the service recovered without a restart"
    );
    assert!(
        ready_during_outage
            .iter()
            .any(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE),
        "/readyz said 503 during the outage"
    );
    assert!(
        ready_during_outage
            .iter()
            .all(|(_, t)| *t < Duration::from_secs(5)),
        "/readyz never hung"
    );
    assert!(
        !during.is_empty()
            && during
                .iter()
                .all(|(s, p, _)| (*s == 503 && *p) || *s == 201),
        "{during:?}"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "requests during the outage were answered, not left hanging"
    );
    assert_read_model_matches_events(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_cut_after_commit_is_retried_into_the_same_order() {
    let upstream = { TestDatabase::new().await.address() };
    let proxy = CommitCuttingProxy::start(upstream, b"append_to_stream").await;
    proxy.armed.store(false, Ordering::SeqCst);
    let app = TestApp::spawn_with(AppOptions {
        connect_via: Some(proxy.address),
        ..AppOptions::default()
    })
    .await;
    // Seeded over a direct connection: the app's own connections have not
    // yet sent append_to_stream's text when the checkout does.
    stocked_product(&app.db.pool, "acme", "A", 100, 10).await;
    proxy.armed.store(true, Ordering::SeqCst);
    let db = &app.db;
    let client =
        OrdersClient::with_policy(&app.base_url, &app.customer("acme", "c"), patient()).unwrap();
    let placed = client
        .checkout(
            &[CheckoutLine {
                sku: "A".into(),
                quantity: 3,
            }],
            None,
        )
        .await
        .unwrap();
    eprintln!(
        "connection cut after commit: {} cut(s); the client's attempt {} got the order, replayed = {}",
        proxy.cuts.load(Ordering::SeqCst),
        placed.attempts,
        placed.replayed
    );
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the answer to the committed append was lost"
    );
    assert!(
        placed.replayed && placed.attempts == 2,
        "the retry found the committed order"
    );
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        1
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 7, "one decrement");
}

/// Fires `n` concurrent checkouts; returns (status, Retry-After present,
/// latency) per request and the time until all were answered.
async fn flood(
    app: &Arc<TestApp>,
    token: &str,
    prefix: &str,
    n: usize,
) -> (Vec<(StatusCode, bool, Duration)>, Duration) {
    let started = Instant::now();
    let answers = join_all((0..n).map(|i| {
        let (app, token, key) = (app.clone(), token.to_owned(), format!("{prefix}-{i}"));
        tokio::spawn(async move {
            let sent = Instant::now();
            let response = app
                .checkout(
                    &token,
                    &key,
                    json!({"lines": [{"sku": "A", "quantity": 1}]}),
                )
                .await;
            let retry_after = response.headers().get("retry-after").is_some();
            (response.status(), retry_after, sent.elapsed())
        })
    }))
    .await;
    (
        answers.into_iter().map(|a| a.unwrap()).collect(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn far_more_requests_than_connections_get_fast_503s_and_the_service_stays_healthy() {
    // Two group-commit writers: each holds a connection while it stores.
    let app = Arc::new(
        TestApp::spawn_with(AppOptions {
            pool_size: 2,
            acquire_timeout: Duration::from_millis(100),
            group_commit: Some(GroupCommitSettings {
                writers: 2,
                ..GroupCommitSettings::default()
            }),
            ..AppOptions::default()
        })
        .await,
    );
    app.product("acme", "A", 10, 100_000).await;
    let token = app.customer("acme", "c");
    // Exhaustion for sure: two checkouts hold both connections (blocked on a
    // row lock held here; the second sent once the first waits, so that
    // each has a writer of its own) while 300 more arrive.
    let mut lock = app.db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM inventory WHERE sku = 'A' FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
        app.db.name()
    );
    let mut holders = Vec::new();
    for i in 0..2_i64 {
        let (app_for_holder, token) = (app.clone(), token.clone());
        holders.push(tokio::spawn(async move {
            app_for_holder
                .checkout(
                    &token,
                    &format!("holder-{i}"),
                    json!({"lines": [{"sku": "A", "quantity": 1}]}),
                )
                .await
                .status()
        }));
        eventually(
            Duration::from_secs(30),
            "the checkouts wait for the row lock",
            || async { app.db.count(&waiting).await > i },
        )
        .await;
    }
    let (exhausted, exhausted_in) = flood(&app, &token, "exhausted", 300).await;
    lock.commit().await.unwrap();
    for holder in holders {
        assert_eq!(holder.await.unwrap(), StatusCode::CREATED);
    }
    let refused = exhausted
        .iter()
        .filter(|(s, r, _)| *s == StatusCode::SERVICE_UNAVAILABLE && *r)
        .count();
    let slowest_refusal = exhausted.iter().map(|(_, _, t)| *t).max().unwrap();
    // Then a plain flood: 300 requests on 2 connections.
    let (answers, all_answered) = flood(&app, &token, "flood", 300).await;
    let mut accepted: Vec<Duration> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .map(|(_, _, t)| *t)
        .collect();
    accepted.sort();
    let turned_away = answers
        .iter()
        .filter(|(s, r, _)| *s == StatusCode::SERVICE_UNAVAILABLE && *r)
        .count();
    let p99 = accepted
        .get((accepted.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let slowest = answers.iter().map(|(_, _, t)| *t).max().unwrap();
    eprintln!(
        "pool of 2: with both connections held, {refused}/300 refused with 503 + Retry-After, slowest refusal {slowest_refusal:?} (all in {exhausted_in:?}); \
         plain flood of 300: {} accepted (p99 {p99:?}), {turned_away} refused, slowest {slowest:?}, all answered in {all_answered:?}",
        accepted.len()
    );
    assert_eq!(
        refused, 300,
        "an exhausted pool answers 503 with Retry-After"
    );
    assert!(
        slowest_refusal < Duration::from_secs(2),
        "fast, not after a long wait"
    );
    assert_eq!(
        accepted.len() + turned_away,
        300,
        "only 201s and 503s with Retry-After"
    );
    assert!(slowest < Duration::from_secs(10), "nobody was left hanging");
    assert!(
        p99 < Duration::from_secs(5),
        "accepted requests stay bounded"
    );
    let health = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "healthy afterwards");
    let placed = 2 + accepted.len() as i64;
    assert_eq!(
        app.db.count("SELECT count(*) FROM store_orders").await,
        placed
    );
    assert_eq!(app.on_hand("acme", "A").await, 100_000 - placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_transaction_holding_back_the_horizon_makes_the_rebuild_wait_and_shows_as_lag() {
    let app = TestApp::spawn().await;
    app.product("acme", "A", 10, 1_000).await;
    // A long transaction with a transaction id, touching nothing of ours.
    let mut long = store_orders_tests::database::open_transaction(&app.db.options()).await;
    let orders = OrderCommands::new(app.db.pool.clone());
    for i in 0..20 {
        orders
            .place_order(
                &as_customer("acme", "c"),
                checkout("c", &format!("held-{i}"), &[("A", 1)]),
            )
            .await
            .unwrap();
    }
    let ready: serde_json::Value = app
        .http
        .get(format!("{}/readyz", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let held_back = ready["commit_order"]["held_back_events"].as_i64().unwrap();
    let held_for = ready["commit_order"]["held_back_seconds"].as_f64().unwrap();
    assert!(held_back >= 20, "{ready}");
    assert!(held_for > 0.0, "{ready}");
    assert_eq!(
        ready["projector"]["lag_events"], 0,
        "projected inline: {ready}"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge: f64 = metrics
        .lines()
        .find(|l| l.starts_with("orders_commit_order_held_back_events "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(gauge >= 20.0, "{gauge}");
    let waits = Arc::new(RecordedWaits::default());
    let rebuilding = {
        let (pool, waits) = (app.db.pool.clone(), waits.clone());
        let options = RebuildOptions {
            mode: RebuildMode::Swap,
            max_events_under_lock: 5,
            ..RebuildOptions::default()
        };
        tokio::spawn(async move { rebuild(&pool, &options, waits.as_ref()).await })
    };
    wait_until(
        "the rebuild says what holds it back",
        Duration::from_secs(15),
        || {
            waits
                .said()
                .iter()
                .any(|w| w.contains("held back by transaction of pid"))
        },
    )
    .await;
    let said = waits.said();
    eprintln!("long transaction: /readyz held back {held_back} events, {held_for:.2} s; the rebuild said: {:?}", said.first());
    assert!(
        !rebuilding.is_finished(),
        "the rebuild waits instead of skipping"
    );
    assert!(
        said.iter()
            .any(|w| w.contains("held back by transaction of pid") && w.contains("not skipping")),
        "{said:?}"
    );
    sqlx::query("COMMIT").execute(&mut long).await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), rebuilding)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(summary
        .rows
        .iter()
        .any(|(t, n)| *t == "store_orders" && *n == 20));
    assert_read_model_matches_events(&app.db.pool).await;
}
