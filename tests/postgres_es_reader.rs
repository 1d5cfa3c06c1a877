//! postgres-es reads our event store: `PostgresEventRepository` over our
//! `events` table, wrapped in cqrs-es' `PersistedEventStore` with our
//! upcasters, loads every aggregate exactly as our own loader does (an old
//! history of version 1 events, and a generated history of several
//! tenants with every event type); its stream read is a point lookup; and
//! a write through it is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, EventStore};
use order_domain::{Order, Product, ProductName, StockAdjustment, TenantId};
use order_store::{load_stream, postgres_es_event_store, CatalogueCommands, StreamKind};
use postgres_es::PostgresEventRepository;
use rebuild_projections::synthetic_history::{generate, HistorySpec};
use serde_json::json;
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

const EVENTS_V1: &str = include_str!("fixtures/history-v1/events.sql");

/// Every stream of the store: (tenant, kind, id).
async fn streams(db: &TestDatabase) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT DISTINCT tenant_id, aggregate_type, aggregate_id FROM events ORDER BY 1, 2, 3",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// One stream through postgres-es (by id alone) and through our loader (by
/// tenant and id): the same aggregate, at the same sequence.
async fn same_through_both<A>(db: &TestDatabase, tenant: &str, id: &str)
where
    A: StreamKind + PartialEq + std::fmt::Debug,
{
    let theirs = postgres_es_event_store::<A>(db.pool.clone())
        .load_aggregate(id)
        .await
        .unwrap_or_else(|e| panic!("postgres-es cannot load {} {id}: {e}", A::TYPE));
    let (ours, version) = load_stream::<A>(&db.pool, &TenantId::try_from(tenant).unwrap(), id)
        .await
        .unwrap();
    assert!(version > 0, "{} {id} has events", A::TYPE);
    assert_eq!(theirs.aggregate, ours, "{} {id}", A::TYPE);
    assert_eq!(
        i64::try_from(theirs.current_sequence).unwrap(),
        version,
        "{} {id}",
        A::TYPE
    );
}

/// Compares every stream of the store; the number compared.
async fn every_stream_the_same_through_both(db: &TestDatabase) -> usize {
    let all = streams(db).await;
    for (tenant, kind, id) in &all {
        match kind.as_str() {
            Order::TYPE => same_through_both::<Order>(db, tenant, id).await,
            Product::TYPE => same_through_both::<Product>(db, tenant, id).await,
            StockAdjustment::TYPE => same_through_both::<StockAdjustment>(db, tenant, id).await,
            other => panic!("a stream of an unknown kind: {other}"),
        }
    }
    all.len()
}

async fn event_types(db: &TestDatabase) -> BTreeSet<(String, String)> {
    sqlx::query_as::<_, (String, String)>("SELECT DISTINCT aggregate_type, event_type FROM events")
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn postgres_es_loads_an_old_history_of_version_1_events_as_our_loader_does() {
    let db = TestDatabase::new().await;
    sqlx::raw_sql(EVENTS_V1).execute(&db.pool).await.unwrap();
    let placed_v1 = db
        .count(
            "SELECT count(*) FROM events WHERE event_type = 'OrderPlaced' AND event_version = '1'",
        )
        .await;
    assert!(placed_v1 > 0, "the fixture holds version 1 OrderPlaced");
    let compared = every_stream_the_same_through_both(&db).await;
    assert!(compared >= 10, "{compared} streams");
    // The upcaster ran for postgres-es too: the v1 order has its channel.
    let id: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE event_type = 'OrderPlaced' LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let order = postgres_es_event_store::<Order>(db.pool.clone())
        .load_aggregate(&id)
        .await
        .unwrap()
        .aggregate;
    assert!(order.details().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_es_loads_every_aggregate_of_a_history_of_several_tenants_as_our_loader_does() {
    let db = TestDatabase::new().await;
    generate(
        &db.pool,
        &HistorySpec {
            events: 6_000,
            tenants: 3,
            products_per_tenant: 10,
            seed: 21,
        },
    )
    .await
    .unwrap();
    // What the generator does not write, through the real commands.
    let catalogue = CatalogueCommands::new(db.pool.clone());
    for tenant in ["tenant-0", "tenant-1", "tenant-2"] {
        catalogue
            .define_product(
                &as_staff(tenant),
                sku("SKU-0001"),
                ProductName::try_from("Renamed").unwrap(),
                pyg(999),
                now(),
            )
            .await
            .unwrap();
    }
    let kinds = event_types(&db).await;
    let expected: BTreeSet<(String, String)> = [
        ("Order", "OrderPlaced"),
        ("Order", "OrderPaid"),
        ("Order", "OrderShipped"),
        ("Order", "OrderCancelled"),
        ("Order", "CheckoutAbandoned"),
        ("Product", "ProductDefined"),
        ("Product", "ProductRedefined"),
        ("StockAdjustment", "StockAdjusted"),
    ]
    .into_iter()
    .map(|(a, e)| (a.to_owned(), e.to_owned()))
    .collect();
    assert_eq!(
        kinds, expected,
        "every event type of every aggregate is compared"
    );
    let compared = every_stream_the_same_through_both(&db).await;
    assert!(compared > 1_000, "{compared} streams");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_stream_read_is_a_point_lookup_over_a_hundred_thousand_events() {
    let db = TestDatabase::new().await;
    generate(
        &db.pool,
        &HistorySpec {
            events: 100_000,
            tenants: 4,
            products_per_tenant: 25,
            seed: 5,
        },
    )
    .await
    .unwrap();
    assert!(db.count("SELECT count(*) FROM events").await >= 100_000);
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .unwrap();
    let id: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'Order' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // postgres-es 0.5's own statement, as it sends it (sql_query.rs).
    let plan: serde_json::Value = sqlx::query_scalar(
        "EXPLAIN (FORMAT JSON) \
         SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
           FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
    )
    .bind("Order")
    .bind(&id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let text = plan.to_string();
    assert!(!text.contains("Seq Scan"), "a scan: {plan:#}");
    assert!(
        text.contains("\"Index Name\":\"events_by_stream\""),
        "{plan:#}"
    );
    // And it finds the stream.
    let events = PostgresEventRepository::new(db.pool.clone())
        .get_events::<Order>(&id)
        .await
        .unwrap();
    assert!(!events.is_empty());
}

#[tokio::test]
async fn a_write_through_postgres_es_is_refused_and_stores_nothing() {
    let db = TestDatabase::new().await;
    let before = db.count("SELECT count(*) FROM events").await;
    let event = SerializedEvent::new(
        "6f1c8a52-1d9e-4a8e-9c2a-5d2b7f0e4c11".to_owned(),
        1,
        Order::TYPE.to_owned(),
        "OrderPaid".to_owned(),
        "1".to_owned(),
        json!({"OrderPaid": {"paid_at": "2026-12-06T10:00:00Z"}}),
        json!({}),
    );
    let refused = PostgresEventRepository::new(db.pool.clone())
        .persist::<Order>(&[event], None)
        .await
        .expect_err("postgres-es writes no tenant_id: the store must refuse it");
    assert!(refused.to_string().contains("tenant_id"), "{refused}");
    // The whole framework, as the crates' documentation sets it up.
    let cqrs = postgres_es::postgres_cqrs::<Order>(db.pool.clone(), vec![], ());
    let refused = cqrs
        .execute(
            "6f1c8a52-1d9e-4a8e-9c2a-5d2b7f0e4c11",
            order_domain::order::OrderCommand::AbandonCheckout(
                order_domain::order::AbandonCheckout {
                    tenant: tenant("acme"),
                    idempotency_key: key("k-1"),
                    by: order_domain::order::AbandonedBy::Staff,
                    at: now(),
                },
            ),
        )
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("tenant_id"), "{refused}");
    assert_eq!(db.count("SELECT count(*) FROM events").await, before);
}
