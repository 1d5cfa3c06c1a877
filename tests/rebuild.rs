//! The projection rebuild: identical tables from a history made under
//! concurrent load, no event missed while checkouts keep arriving or while a
//! transaction commits late, drift reported by --verify, clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use order_domain::order::OrderEvent;
use order_domain::{StockDelta, StockReason};
use order_store::{CatalogueCommands, CheckoutError, OrderCommands, StoreError};
use rebuild_projections::rebuild::{
    rebuild, table_checksum, RebuildError, RebuildMode, RebuildOptions, Silent, READ_MODEL_TABLES,
};
use rebuild_projections::synthetic_history::{generate, HistorySpec};
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

async fn checksums(db: &TestDatabase) -> Vec<String> {
    let mut conn = db.pool.acquire().await.unwrap();
    let mut sums = Vec::new();
    for table in READ_MODEL_TABLES {
        sums.push(
            table_checksum(&mut conn, &format!("public.{table}"))
                .await
                .unwrap(),
        );
    }
    sums
}

fn options(mode: RebuildMode) -> RebuildOptions {
    RebuildOptions {
        mode,
        ..RebuildOptions::default()
    }
}

/// The catalogue definitions (indexes, constraints, comments) of the read
/// model, to check that a swap leaves the schema as the migrations made it.
async fn schema_of(db: &TestDatabase) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
           AND tablename IN ('store_orders', 'store_order_items', 'inventory', \
                             'store_checkout_abandonments') \
         UNION ALL \
         SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE conrelid IN ('store_orders'::regclass, 'store_order_items'::regclass, \
                                               'inventory'::regclass, \
                                               'store_checkout_abandonments'::regclass) \
         UNION ALL \
         SELECT coalesce(col_description('store_orders'::regclass, attnum), '') FROM pg_attribute \
         WHERE attrelid = 'store_orders'::regclass AND attname = 'idempotency_key' \
         ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Three tenants' worth of concurrent shop traffic through the real write
/// path: checkouts with their duplicates, cancels, payments, shipments,
/// stock receipts racing sales of the last unit, and keys abandoned (some
/// racing their checkout).
async fn busy_history(db: &TestDatabase) {
    let tenants = ["acme", "zeta", "kiosk-9"];
    for tenant in tenants {
        for (sku, stock) in [("A", 500), ("B", 500), ("C", 500), ("LAST", 1)] {
            stocked_product(&db.pool, tenant, sku, 1_000, stock).await;
        }
    }
    let orders = Arc::new(OrderCommands::new(db.pool.clone()));
    let catalogue = Arc::new(CatalogueCommands::new(db.pool.clone()));
    let mut work = Vec::new();
    for tenant in tenants {
        for i in 0..24 {
            let orders = orders.clone();
            work.push(tokio::spawn(async move {
                let customer = format!("c-{}", i % 5);
                let lines: Vec<(&str, i64)> = match i % 3 {
                    0 => vec![("A", 1)],
                    1 => vec![("B", 2), ("A", 1)],
                    _ => vec![("C", 3), ("B", 1), ("A", 2)],
                };
                let key = format!("{tenant}-k-{i}");
                let context = as_customer(tenant, &customer);
                // The checkout and its duplicate race each other.
                let (a, b) = tokio::join!(
                    orders.place_order(&context, checkout(&customer, &key, &lines)),
                    orders.place_order(&context, checkout(&customer, &key, &lines)),
                );
                let id = a.unwrap().order.id;
                assert_eq!(b.unwrap().order.id, id);
                let id = order_domain::OrderId::from(id);
                match i % 4 {
                    0 => {
                        orders.cancel(&context, id, now()).await.unwrap();
                    }
                    1 => {
                        orders
                            .mark_paid(&as_staff(tenant), id, now())
                            .await
                            .unwrap();
                    }
                    2 => {
                        orders
                            .mark_paid(&as_staff(tenant), id, now())
                            .await
                            .unwrap();
                        orders.ship(&as_staff(tenant), id, now()).await.unwrap();
                    }
                    _ => {}
                }
            }));
        }
        for buyer in 0..4 {
            let orders = orders.clone();
            work.push(tokio::spawn(async move {
                let customer = format!("last-{buyer}");
                let result = orders
                    .place_order(
                        &as_customer(tenant, &customer),
                        checkout(&customer, &format!("{tenant}-last-{buyer}"), &[("LAST", 1)]),
                    )
                    .await;
                assert!(
                    matches!(result, Ok(_) | Err(CheckoutError::OutOfStock { .. })),
                    "{result:?}"
                );
            }));
        }
        for i in 0..4 {
            let orders = orders.clone();
            work.push(tokio::spawn(async move {
                let (customer, staff) = (as_customer(tenant, "c-gone"), as_staff(tenant));
                let gone = format!("{tenant}-gone-{i}");
                let (gone_key, staff_key) = (key(&gone), key(&format!("{gone}-staff")));
                orders
                    .abandon_checkout(&staff, &staff_key, now())
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    orders
                        .abandon_checkout(&customer, &gone_key, now())
                        .await
                        .unwrap();
                } else {
                    let (settled, placed) = tokio::join!(
                        orders.abandon_checkout(&customer, &gone_key, now()),
                        orders.place_order(&customer, checkout("c-gone", &gone, &[("A", 1)])),
                    );
                    assert_eq!(
                        settled.unwrap().checkout.order.is_some(),
                        placed.is_ok(),
                        "one winner: {placed:?}"
                    );
                }
            }));
        }
        let catalogue = catalogue.clone();
        work.push(tokio::spawn(async move {
            catalogue
                .adjust_stock(
                    &as_staff(tenant),
                    key(&format!("{tenant}-restock")),
                    sku("LAST"),
                    StockDelta::try_from(2).unwrap(),
                    StockReason::Received,
                    now(),
                )
                .await
                .unwrap();
        }));
    }
    for task in join_all(work).await {
        task.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_made_under_concurrent_load_rebuilds_to_byte_identical_tables_twice() {
    let db = TestDatabase::new().await;
    busy_history(&db).await;
    let live = checksums(&db).await;
    let schema = schema_of(&db).await;
    assert!(db.count("SELECT count(*) FROM events").await > 150);
    assert!(
        db.count("SELECT count(*) FROM store_checkout_abandonments")
            .await
            >= 12
    );
    let first = rebuild(&db.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap();
    assert!(first.events > 150);
    assert_eq!(
        checksums(&db).await,
        live,
        "the rebuilt tables equal the live ones"
    );
    assert_eq!(
        schema_of(&db).await,
        schema,
        "the swap leaves the schema as the migrations made it"
    );
    rebuild(&db.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap();
    assert_eq!(
        checksums(&db).await,
        live,
        "a second rebuild gives the same tables"
    );
    rebuild(&db.pool, &options(RebuildMode::InPlace), &Silent)
        .await
        .unwrap();
    assert_eq!(checksums(&db).await, live, "so does an in-place rebuild");
    assert_eq!(schema_of(&db).await, schema);
    let verified = rebuild(&db.pool, &options(RebuildMode::Verify), &Silent)
        .await
        .unwrap();
    assert!(verified.drift.unwrap().is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_while_checkouts_keep_arriving_misses_none_and_counts_none_twice() {
    let db = TestDatabase::new().await;
    generate(
        &db.pool,
        &HistorySpec {
            events: 30_000,
            tenants: 2,
            products_per_tenant: 10,
            seed: 3,
        },
    )
    .await
    .unwrap();
    // The history is what the service writes today: every event at the
    // version the code writes it (no old version the upcasters would mend).
    assert_eq!(
        db.count(
            "SELECT count(*) FROM events \
             WHERE (event_type = 'OrderPlaced' AND event_version <> '2') \
                OR (event_type <> 'OrderPlaced' AND event_version <> '1')"
        )
        .await,
        0
    );
    rebuild(&db.pool, &options(RebuildMode::InPlace), &Silent)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let placed: Arc<Mutex<Vec<(uuid::Uuid, Instant)>>> = Arc::default();
    let shoppers: Vec<_> = (0..3)
        .map(|shopper| {
            let (stop, placed) = (stop.clone(), placed.clone());
            let orders = OrderCommands::new(db.pool.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let customer = format!("live-{shopper}");
                    let request = checkout(
                        &customer,
                        &format!("live-{shopper}-{i}"),
                        &[("SKU-0001", 1), ("SKU-0002", 1)],
                    );
                    let result = orders
                        .place_order(&as_customer("tenant-0", &customer), request)
                        .await;
                    placed
                        .lock()
                        .unwrap()
                        .push((result.unwrap().order.id, Instant::now()));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let summary = rebuild(&db.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap();
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for shopper in shoppers {
        shopper.await.unwrap();
    }
    let placed = placed.lock().unwrap().clone();
    let during = placed
        .iter()
        .filter(|(_, at)| *at > started && *at < finished)
        .count();
    eprintln!(
        "rebuild took {:?} over {} events; {} checkouts committed during it, {} in all",
        finished - started,
        summary.events,
        during,
        placed.len()
    );
    assert!(during > 0, "checkouts kept arriving during the rebuild");
    let ids: Vec<uuid::Uuid> = placed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    let present: i64 = sqlx::query_scalar("SELECT count(*) FROM store_orders WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        present,
        ids.len() as i64,
        "every order committed before and during the rebuild is there, once"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders").await,
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await
    );
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn verify_finds_no_drift_on_a_clean_database_and_names_the_corrupted_rows() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    stocked_product(&db.pool, "acme", "B", 1_000, 10).await;
    let placed = OrderCommands::new(db.pool.clone())
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 1)]))
        .await
        .unwrap();
    let clean = rebuild(&db.pool, &options(RebuildMode::Verify), &Silent)
        .await
        .unwrap();
    assert_eq!(clean.drift.unwrap().drifted_rows(), 0);
    let before = checksums(&db).await;
    sqlx::query("UPDATE store_orders SET status = 'shipped' WHERE id = $1")
        .bind(placed.order.id)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE inventory SET on_hand = 999 WHERE sku = 'B'")
        .execute(&db.pool)
        .await
        .unwrap();
    let drift = rebuild(&db.pool, &options(RebuildMode::Verify), &Silent)
        .await
        .unwrap()
        .drift
        .unwrap();
    assert!(!drift.is_clean());
    let table = |name: &str| {
        drift
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .clone()
    };
    let orders = table("store_orders");
    assert_eq!((orders.only_live, orders.only_rebuilt), (1, 1));
    assert!(
        orders.examples.iter().any(|e| e.starts_with("live: ")
            && e.contains(&placed.order.id.to_string())
            && e.contains("shipped")),
        "{:?}",
        orders.examples
    );
    assert!(
        orders
            .examples
            .iter()
            .any(|e| e.starts_with("rebuilt: ") && e.contains("placed")),
        "{:?}",
        orders.examples
    );
    let inventory = table("inventory");
    assert_eq!((inventory.only_live, inventory.only_rebuilt), (1, 1));
    assert!(
        inventory
            .examples
            .iter()
            .any(|e| e.contains("(acme,B,") && e.contains(",999,")),
        "{:?}",
        inventory.examples
    );
    assert_eq!(table("store_order_items").only_live, 0);
    assert_ne!(
        checksums(&db).await,
        before,
        "verify itself changed nothing; the corruption is still there"
    );
    rebuild(&db.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap();
    assert_eq!(checksums(&db).await, before, "a rebuild repairs it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_whose_transaction_commits_after_a_later_positioned_one_is_not_skipped() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let orders = OrderCommands::new(db.pool.clone());
    let first = orders
        .place_order(&as_customer("acme", "c"), checkout("c", "k-1", &[("A", 1)]))
        .await
        .unwrap();
    // A slow writer: it appends the first order's payment (and projects it,
    // as the write path does) but does not commit yet.
    let mut slow = db.pool.begin().await.unwrap();
    let paid = serde_json::to_value(OrderEvent::OrderPaid { paid_at: at(60) }).unwrap();
    let slow_position: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tenant_id) \
         VALUES ('Order', $1, 2, 'OrderPaid', '1', $2, '{\"tenant_id\": \"acme\"}', 'acme') RETURNING position",
    )
    .bind(first.order.id.to_string())
    .bind(paid)
    .fetch_one(&mut *slow)
    .await
    .unwrap();
    sqlx::query("UPDATE store_orders SET status = 'paid', updated_at = $2, last_event_sequence = 2 WHERE id = $1")
        .bind(first.order.id)
        .bind(at(60))
        .execute(&mut *slow)
        .await
        .unwrap();
    // Meanwhile another checkout commits, with a later position.
    let second = orders
        .place_order(&as_customer("acme", "d"), checkout("d", "k-2", &[("A", 2)]))
        .await
        .unwrap();
    let second_position: i64 =
        sqlx::query_scalar("SELECT position FROM events WHERE aggregate_id = $1")
            .bind(second.order.id.to_string())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        slow_position < second_position,
        "the slow event holds the earlier position"
    );
    let waits = Arc::new(RecordedWaits::default());
    let rebuilding = {
        let (pool, waits) = (db.pool.clone(), waits.clone());
        let options = RebuildOptions {
            lock_wait: Duration::from_millis(200),
            ..options(RebuildMode::Swap)
        };
        tokio::spawn(async move { rebuild(&pool, &options, waits.as_ref()).await })
    };
    wait_until(
        "the rebuild says it waits for the slow transaction",
        Duration::from_secs(15),
        || waits.said().iter().any(|w| w.contains("waiting")),
    )
    .await;
    assert!(
        !rebuilding.is_finished(),
        "the rebuild waits for the slow transaction"
    );
    assert!(
        waits.said().iter().any(|w| w.contains("waiting")),
        "and says so: {:?}",
        waits.said()
    );
    slow.commit().await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), rebuilding)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(summary.events >= 5);
    let status: String = sqlx::query_scalar("SELECT status FROM store_orders WHERE id = $1")
        .bind(first.order.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "paid", "the late-committing event was replayed");
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 2);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn missing_migrations_and_unreadable_events_are_clear_errors() {
    let bare = TestDatabase::unmigrated().await;
    let err = rebuild(&bare.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap_err();
    assert!(matches!(err, RebuildError::MissingMigrations(_)), "{err:?}");
    assert!(err.to_string().contains("order-service migrate"), "{err}");

    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let position: i64 = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, tenant_id) \
         VALUES ('Order', 'broken-stream', 1, 'OrderPaid', '1', '{\"OrderPaid\": {\"paid_at\": \"yesterday\"}}', '{}', 'acme') \
         RETURNING position",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let before = checksums(&db).await;
    let err = rebuild(&db.pool, &options(RebuildMode::Swap), &Silent)
        .await
        .unwrap_err();
    let RebuildError::Store(StoreError::UnreadableEvent { stream, .. }) = &err else {
        panic!("{err:?}")
    };
    assert!(
        stream.contains("Order/broken-stream") && stream.contains(&format!("position {position}")),
        "{stream}"
    );
    assert_eq!(
        checksums(&db).await,
        before,
        "a failed rebuild leaves the live tables alone"
    );
    let leftovers = db
        .count("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'projection_rebuild%'")
        .await;
    assert_eq!(leftovers, 0, "and no shadow schema behind");
}
