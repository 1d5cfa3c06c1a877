//! Beyond one process: three `order-service serve` replicas on one
//! PostgreSQL keep every guarantee; and the schema has the shape a
//! distributed PostgreSQL (Citus) needs to shard by tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use order_service::Role;
use rebuild_projections::rebuild::{rebuild, RebuildMode, RebuildOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};
use store_orders_tests::app::token_for;
use store_orders_tests::fixtures::*;
use store_orders_tests::service_process::{ServiceProcess, ANY_PORT};
use store_orders_tests::TestDatabase;

const SERVICE: &str = env!("CARGO_BIN_EXE_order-service-under-test");

/// Tables that carry no tenant data, and why.
const NOT_TENANT_TABLES: [&str; 2] = [
    // sqlx's bookkeeping: one row per migration, on every node.
    "_sqlx_migrations",
    // The relay's cursor: one row per relay and database node, never a
    // tenant's (docs/SCALE-OUT.md: a local table on each node).
    "relay_checkpoints",
];

#[tokio::test]
async fn every_table_of_tenant_data_has_the_tenant_in_every_key() {
    let db = TestDatabase::new().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let tenant_tables: Vec<&String> = tables
        .iter()
        .filter(|t| !NOT_TENANT_TABLES.contains(&t.as_str()))
        .collect();
    assert!(tenant_tables.len() >= 4, "{tables:?}");
    let without_column: Vec<String> = sqlx::query_scalar(
        "SELECT t FROM unnest($1::text[]) AS t WHERE NOT EXISTS (\
            SELECT 1 FROM pg_attribute a WHERE a.attrelid = t::regclass \
            AND a.attname = 'tenant_id' AND NOT a.attisdropped)",
    )
    .bind(&tenant_tables)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        without_column.is_empty(),
        "no tenant_id column: {without_column:?}"
    );
    let unique_without_tenant: Vec<String> = sqlx::query_scalar(
        "SELECT x.indexrelid::regclass::text FROM pg_index x \
         WHERE x.indrelid = ANY($1::text[]::regclass[]) AND x.indisunique \
           AND NOT EXISTS (SELECT 1 FROM unnest(x.indkey) AS k(attnum) \
                           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
                           WHERE a.attname = 'tenant_id')",
    )
    .bind(&tenant_tables)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        unique_without_tenant.is_empty(),
        "unique indexes (or primary keys) without tenant_id: {unique_without_tenant:?}"
    );
    let foreign_without_tenant: Vec<String> = sqlx::query_scalar(
        "SELECT c.conname::text FROM pg_constraint c \
         WHERE c.contype = 'f' AND (c.conrelid = ANY($1::text[]::regclass[]) \
                                 OR c.confrelid = ANY($1::text[]::regclass[])) \
           AND NOT EXISTS (SELECT 1 FROM unnest(c.conkey) AS k(attnum) \
                           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                           WHERE a.attname = 'tenant_id')",
    )
    .bind(&tenant_tables)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        foreign_without_tenant.is_empty(),
        "foreign keys without tenant_id: {foreign_without_tenant:?}"
    );
    let foreign_keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
         AND conrelid = 'store_order_items'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(foreign_keys, 1, "the order's lines still reference it");
}

/// Three replicas on one database, started from one unmigrated database at
/// the same instant.
async fn three_replicas(db: &TestDatabase) -> Vec<ServiceProcess> {
    let url = db.url();
    join_all((0..3).map(|_| {
        let url = url.clone();
        async move {
            ServiceProcess::start(
                SERVICE,
                &url,
                ANY_PORT,
                &[("RUST_LOG", "info"), ("ORDERS_DB_POOL_SIZE", "8")],
            )
            .await
        }
    }))
    .await
}

/// Waits until every replica answers `/readyz` with 200; fails the test,
/// naming the replica, after 10 seconds.
async fn ready(replicas: &[ServiceProcess]) {
    let http = reqwest::Client::new();
    for replica in replicas {
        let mut ready = false;
        for _ in 0..200 {
            let answer = http
                .get(format!("{}/readyz", replica.base_url()))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status() == StatusCode::OK) {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            ready,
            "{} never became ready within 10 s",
            replica.base_url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_started_at_once_migrate_once_and_all_serve() {
    let db = TestDatabase::unmigrated().await;
    let replicas = three_replicas(&db).await;
    ready(&replicas).await;
    let logs: Vec<String> = replicas.iter().map(ServiceProcess::log).collect();
    let applied = logs
        .iter()
        .filter(|l| l.contains("migrations applied"))
        .count();
    let up_to_date = logs
        .iter()
        .filter(|l| l.contains("schema up to date"))
        .count();
    assert_eq!((applied, up_to_date), (1, 2), "{logs:#?}");
    assert!(logs.iter().all(|l| !l.contains("ERROR")), "{logs:#?}");
    let versions: i64 = db
        .count("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .await;
    assert_eq!(versions as usize, order_store::MIGRATOR.iter().count());
}

/// Sends the same checkout to the replicas in turn; (status, order id).
async fn checkout(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> Option<(u16, String)> {
    let response = http
        .post(format!("{base}/v1/checkout"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.ok()?;
    Some((status, body["id"].as_str().unwrap_or_default().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_duplicates_spread_over_three_replicas_make_one_order_whatever_the_stock() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "PLENTY", 100, 1_000).await;
    stocked_product(&db.pool, "acme", "LAST", 100, 3).await;
    let replicas = three_replicas(&db).await;
    ready(&replicas).await;
    let http = reqwest::Client::new();
    let token = token_for("acme", "c", Role::Customer);
    for (sku, quantity, left) in [("PLENTY", 3, 997), ("LAST", 3, 0)] {
        let body = json!({"lines": [{"sku": sku, "quantity": quantity}]});
        let key = format!("storm-{sku}");
        let answers = join_all((0..64).map(|i| {
            let (http, base, token, key, body) = (
                http.clone(),
                replicas[i % 3].base_url(),
                token.clone(),
                key.clone(),
                body.clone(),
            );
            async move { checkout(&http, &base, &token, &key, &body).await }
        }))
        .await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().unwrap().0).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{sku}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            63,
            "{sku}: {statuses:?}"
        );
        let ids: std::collections::HashSet<&str> = answers
            .iter()
            .map(|a| a.as_ref().unwrap().1.as_str())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            on_hand(&db.pool, "acme", sku).await,
            left,
            "{sku}: one decrement"
        );
    }
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 2);
    assert_read_model_matches_events(&db.pool).await;
}

/// Clients that retry each checkout on the next replica until answered.
async fn retrying_clients(
    replicas: Arc<Vec<String>>,
    clients: usize,
    keys_each: usize,
    acknowledged: Arc<std::sync::Mutex<HashMap<String, String>>>,
    failures: Arc<AtomicUsize>,
) {
    let http = reqwest::Client::new();
    join_all((0..clients).map(|client| {
        let (http, replicas, acknowledged, failures) = (
            http.clone(),
            replicas.clone(),
            acknowledged.clone(),
            failures.clone(),
        );
        async move {
            let token = token_for("acme", &format!("c{client}"), Role::Customer);
            let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
            for k in 0..keys_each {
                let key = format!("client-{client}-{k}");
                let mut attempt = client;
                let started = std::time::Instant::now();
                loop {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "{key}: no replica answered within a minute"
                    );
                    let base = &replicas[attempt % replicas.len()];
                    match checkout(&http, base, &token, &key, &body).await {
                        Some((201 | 200, id)) => {
                            acknowledged.lock().unwrap().insert(key.clone(), id);
                            break;
                        }
                        Some((status, _)) if status < 500 => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        _ => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retrying_clients_lose_nothing_when_one_replica_is_killed_and_another_stopped() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    let mut replicas = three_replicas(&db).await;
    ready(&replicas).await;
    let bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.base_url()).collect());
    let acknowledged = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients = tokio::spawn(retrying_clients(
        bases,
        12,
        40,
        acknowledged.clone(),
        failures.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    replicas[0].kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    replicas[1].terminate().await;
    let stopped = replicas[1].exited().await;
    assert!(
        stopped.success(),
        "SIGTERM drains and exits cleanly: {stopped:?}"
    );
    clients.await.unwrap();
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no checkout was refused"
    );
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 12 * 40, "every key was answered");
    let stored: HashMap<String, String> =
        sqlx::query_as::<_, (String, uuid::Uuid)>("SELECT idempotency_key, id FROM store_orders")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, id)| (key, id.to_string()))
            .collect();
    assert_eq!(
        stored, acknowledged,
        "each acknowledged order, once, as acknowledged"
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 100_000 - 480);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_cut_over_while_three_replicas_serve_fails_no_request_and_loses_no_checkout() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    let replicas = three_replicas(&db).await;
    ready(&replicas).await;
    let bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.base_url()).collect());
    // Some history first, so the rebuild has work to do.
    let warm_up = Arc::new(std::sync::Mutex::new(HashMap::new()));
    retrying_clients(bases.clone(), 8, 25, warm_up, Arc::new(AtomicUsize::new(0))).await;
    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let shoppers: Vec<_> = (0..6)
        .map(|shopper| {
            let (bases, running, answered, refused) = (
                bases.clone(),
                running.clone(),
                answered.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let token = token_for("acme", &format!("s{shopper}"), Role::Customer);
                let body = json!({"lines": [{"sku": "A", "quantity": 1}]});
                let mut n = 0;
                while running.load(Ordering::SeqCst) {
                    let key = format!("during-{shopper}-{n}");
                    match checkout(&http, &bases[n % 3], &token, &key, &body).await {
                        Some((201, _)) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        other => refused.lock().unwrap().push(format!("{key}: {other:?}")),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = rebuild(
        &db.pool,
        &RebuildOptions {
            mode: RebuildMode::Swap,
            ..RebuildOptions::default()
        },
        &RecordedWaits::default(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::SeqCst);
    for shopper in shoppers {
        shopper.await.unwrap();
    }
    let refused = refused.lock().unwrap().clone();
    assert!(
        refused.is_empty(),
        "requests failed during the cut-over: {refused:?}"
    );
    let during = answered.load(Ordering::SeqCst) as i64;
    eprintln!("{during} checkouts answered while the rebuild ran ({report:?})");
    assert!(during > 0);
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders WHERE idempotency_key LIKE 'during-%'")
            .await,
        during
    );
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders").await,
        200 + during
    );
    assert_read_model_matches_events(&db.pool).await;
}

/// `order-service distribute` on a PostgreSQL without Citus: a clear
/// refusal, a failure exit, and nothing changed.
#[tokio::test]
async fn distribute_refuses_where_the_citus_extension_is_missing() {
    let db = TestDatabase::new().await;
    let output = tokio::process::Command::new(SERVICE)
        .arg("distribute")
        .env("DATABASE_URL", db.url())
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the citus extension is not installed in this database"),
        "{stderr}"
    );
    let setting: Option<String> = sqlx::query_scalar(
        "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting \
         WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(&db.pool)
    .await
    .unwrap();
    assert_eq!(setting, None, "nothing changed");
}
