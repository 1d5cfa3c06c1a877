//! The order's shape lives in four places, each with a meaning of its own:
//! the aggregate's `OrderDetails` (what the events say), the SQL composite
//! `read_model_order` (what the projection hands the database), the
//! `store_orders`/`store_order_items` tables (what queries read), and
//! `order_api::Order` (what clients get). The queries' row type is checked
//! against the tables by sqlx at compile time (`.sqlx/`). These tests fail
//! when the other places drift apart: a field added to one and forgotten in
//! another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use order_store::{OrderCommands, OrderQueries, OrderVisibility};
use serde_json::Value;
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

/// Columns of `table` as (name, type), minus `except`.
async fn columns(db: &TestDatabase, relation: &str, except: &[&str]) -> Vec<(String, String)> {
    let mut columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
         FROM pg_attribute a \
         WHERE a.attrelid = (SELECT typrelid FROM pg_type WHERE oid = to_regtype($1) \
                             UNION ALL SELECT to_regclass($1)::oid LIMIT 1) \
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(relation)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    columns.retain(|(name, _)| !except.contains(&name.as_str()));
    columns.sort();
    columns
}

#[tokio::test]
async fn the_projection_composites_carry_every_column_of_the_order_tables() {
    let db = TestDatabase::new().await;
    // The projection passes the tenant as its own argument for the items
    // (migration 8); every other column comes from the composite.
    let cases = [
        ("read_model_order", "store_orders", &[][..], &[][..]),
        (
            "read_model_order_item",
            "store_order_items",
            &[][..],
            &["tenant_id"][..],
        ),
    ];
    for (composite, table, composite_only, table_only) in cases {
        let projected = columns(&db, composite, composite_only).await;
        let stored = columns(&db, table, table_only).await;
        assert!(!projected.is_empty(), "{composite} has no attributes");
        assert_eq!(
            projected, stored,
            "{composite} and {table} differ: a column added to one needs the other \
             (and the projection in order-store/src/projection)"
        );
    }
}

/// Every member of `value`, recursively, is present and not null, and no
/// array is empty: an order built with every field set must show them all.
fn assert_filled(path: &str, value: &Value) {
    match value {
        Value::Null => panic!("{path} is null"),
        Value::Array(items) => {
            assert!(!items.is_empty(), "{path} is empty");
            for (i, item) in items.iter().enumerate() {
                assert_filled(&format!("{path}[{i}]"), item);
            }
        }
        Value::Object(members) => {
            for (name, member) in members {
                assert_filled(&format!("{path}.{name}"), member);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn an_order_reads_the_same_from_its_events_and_from_its_rows_with_every_field_filled() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    stocked_product(&db.pool, "acme", "B", 250, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let placed = commands
        .place_order(
            &as_customer("acme", "cust-1"),
            checkout_with_note("cust-1", "k", &[("B", 1), ("A", 2)], Some("gift wrap")),
        )
        .await
        .unwrap();
    let paid = commands
        .mark_paid(&as_staff("acme"), order_id("acme", "k"), at(60))
        .await
        .unwrap();
    // From the events (the command's answer) and from the rows (a query).
    let from_events = paid.order;
    let from_rows = OrderQueries::new(db.pool.clone())
        .find_order(
            &tenant("acme"),
            order_id("acme", "k"),
            &OrderVisibility::Tenant,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_rows, from_events);
    assert_eq!(from_events.id, placed.order.id);
    let json = serde_json::to_value(&from_rows).unwrap();
    assert_filled("order", &json);
    let members: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(
        members.len(),
        11,
        "order_api::Order has {members:?}: a new member needs a column, the projection, \
         the queries and this test"
    );
}
