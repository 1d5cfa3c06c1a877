//! An order's life after checkout, tenant and customer isolation, the order
//! queries, and what the event store records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use order_domain::order::{OrderAction, OrderError};
use order_domain::OrderStatus;
use order_store::{
    OrderCommandError, OrderCommands, OrderCursor, OrderFilter, OrderQueries, OrderVisibility,
};
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

async fn placed(db: &TestDatabase, key_text: &str) -> order_domain::OrderId {
    OrderCommands::new(db.pool.clone())
        .place_order(
            &as_customer("acme", "cust-1"),
            checkout("cust-1", key_text, &[("A", 2), ("B", 1)]),
        )
        .await
        .unwrap();
    order_id("acme", key_text)
}

async fn shop(db: &TestDatabase) {
    stocked_product(&db.pool, "acme", "A", 100, 10).await;
    stocked_product(&db.pool, "acme", "B", 50, 10).await;
}

#[tokio::test]
async fn an_order_goes_from_placed_to_paid_to_shipped_and_repeats_change_nothing() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    let orders = OrderCommands::new(db.pool.clone());
    let staff = as_staff("acme");
    let paid = orders.mark_paid(&staff, id, now()).await.unwrap();
    assert!(paid.changed);
    assert_eq!(paid.order.status, order_api::OrderStatus::Paid);
    let again = orders.mark_paid(&staff, id, now()).await.unwrap();
    assert!(!again.changed);
    assert_eq!(again.order, paid.order);
    let shipped = orders.ship(&staff, id, now()).await.unwrap();
    assert_eq!(shipped.order.status, order_api::OrderStatus::Shipped);
    assert!(shipped.order.updated_at >= paid.order.updated_at);
    assert!(!orders.ship(&staff, id, now()).await.unwrap().changed);
    let err = orders.cancel(&staff, id, now()).await.unwrap_err();
    assert!(matches!(
        err,
        OrderCommandError::Rejected(OrderError::InvalidTransition {
            from: OrderStatus::Shipped,
            action: OrderAction::Cancel
        })
    ));
    let read = OrderQueries::new(db.pool.clone())
        .find_order(&tenant("acme"), id, &OrderVisibility::Tenant)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read, shipped.order);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn shipping_an_unpaid_order_is_an_invalid_transition() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    let err = OrderCommands::new(db.pool.clone())
        .ship(&as_staff("acme"), id, now())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        OrderCommandError::Rejected(OrderError::InvalidTransition {
            from: OrderStatus::Placed,
            action: OrderAction::Ship
        })
    ));
}

#[tokio::test]
async fn cancelling_twice_restores_the_stock_once() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    assert_eq!(
        (
            on_hand(&db.pool, "acme", "A").await,
            on_hand(&db.pool, "acme", "B").await
        ),
        (8, 9)
    );
    let orders = OrderCommands::new(db.pool.clone());
    let customer = as_customer("acme", "cust-1");
    let first = orders.cancel(&customer, id, now()).await.unwrap();
    let second = orders.cancel(&customer, id, now()).await.unwrap();
    let by_staff = orders.cancel(&as_staff("acme"), id, now()).await.unwrap();
    assert!(first.changed && !second.changed && !by_staff.changed);
    assert_eq!(second.order.status, order_api::OrderStatus::Cancelled);
    assert_eq!(
        (
            on_hand(&db.pool, "acme", "A").await,
            on_hand(&db.pool, "acme", "B").await
        ),
        (10, 10)
    );
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn a_customer_cannot_cancel_a_paid_order_but_staff_can() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    let orders = OrderCommands::new(db.pool.clone());
    orders
        .mark_paid(&as_staff("acme"), id, now())
        .await
        .unwrap();
    let err = orders
        .cancel(&as_customer("acme", "cust-1"), id, now())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OrderCommandError::Rejected(OrderError::InvalidTransition { .. })
        ),
        "{err:?}"
    );
    let cancelled = orders.cancel(&as_staff("acme"), id, now()).await.unwrap();
    assert_eq!(cancelled.order.status, order_api::OrderStatus::Cancelled);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 10);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn another_tenants_or_customers_order_is_not_found_for_commands_or_reads() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    let orders = OrderCommands::new(db.pool.clone());
    for context in [
        as_staff("zeta"),
        as_customer("zeta", "cust-1"),
        as_customer("acme", "cust-2"),
    ] {
        let err = orders.cancel(&context, id, now()).await.unwrap_err();
        assert!(
            matches!(err, OrderCommandError::NotFound),
            "{context:?}: {err:?}"
        );
    }
    for context in [as_staff("zeta")] {
        assert!(matches!(
            orders.mark_paid(&context, id, now()).await,
            Err(OrderCommandError::NotFound)
        ));
        assert!(matches!(
            orders.ship(&context, id, now()).await,
            Err(OrderCommandError::NotFound)
        ));
    }
    let missing = order_id("acme", "never-used");
    assert!(matches!(
        orders.cancel(&as_staff("acme"), missing, now()).await,
        Err(OrderCommandError::NotFound)
    ));
    let queries = OrderQueries::new(db.pool.clone());
    let other_customer = OrderVisibility::Customer(customer("cust-2"));
    assert!(queries
        .find_order(&tenant("zeta"), id, &OrderVisibility::Tenant)
        .await
        .unwrap()
        .is_none());
    assert!(queries
        .find_order(&tenant("acme"), id, &other_customer)
        .await
        .unwrap()
        .is_none());
    let own = OrderVisibility::Customer(customer("cust-1"));
    assert!(queries
        .find_order(&tenant("acme"), id, &own)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        on_hand(&db.pool, "acme", "A").await,
        8,
        "nothing was cancelled"
    );
}

#[tokio::test]
async fn orders_are_listed_newest_first_page_by_page_with_filters() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let orders = OrderCommands::new(db.pool.clone());
    for i in 0..5 {
        let (who, key_text) = (if i == 2 { "cust-2" } else { "cust-1" }, format!("k-{i}"));
        let mut request = checkout(who, &key_text, &[("A", 1)]);
        request.at = at(i);
        orders
            .place_order(&as_customer("acme", who), request)
            .await
            .unwrap();
    }
    orders
        .mark_paid(&as_staff("acme"), order_id("acme", "k-1"), at(100))
        .await
        .unwrap();
    let queries = OrderQueries::new(db.pool.clone());
    let keys = |page: &order_store::OrderPage| -> Vec<String> {
        page.orders
            .iter()
            .map(|o| o.idempotency_key.clone().unwrap())
            .collect()
    };
    let filter = |limit, after| OrderFilter {
        status: None,
        limit,
        after,
    };
    let acme = tenant("acme");
    let page1 = queries
        .list_orders(&acme, &OrderVisibility::Tenant, &filter(2, None))
        .await
        .unwrap();
    assert_eq!(keys(&page1), ["k-4", "k-3"]);
    let cursor = OrderCursor::decode(&page1.next.unwrap().encode()).unwrap();
    let page2 = queries
        .list_orders(&acme, &OrderVisibility::Tenant, &filter(2, Some(cursor)))
        .await
        .unwrap();
    assert_eq!(keys(&page2), ["k-2", "k-1"]);
    let page3 = queries
        .list_orders(&acme, &OrderVisibility::Tenant, &filter(2, page2.next))
        .await
        .unwrap();
    assert_eq!(keys(&page3), ["k-0"]);
    assert!(page3.next.is_none());
    let mine = OrderVisibility::Customer(customer("cust-1"));
    let own = queries
        .list_orders(&acme, &mine, &filter(100, None))
        .await
        .unwrap();
    assert_eq!(keys(&own), ["k-4", "k-3", "k-1", "k-0"]);
    let paid = OrderFilter {
        status: Some(OrderStatus::Paid),
        limit: 20,
        after: None,
    };
    assert_eq!(
        keys(
            &queries
                .list_orders(&acme, &OrderVisibility::Tenant, &paid)
                .await
                .unwrap()
        ),
        ["k-1"]
    );
    let other = queries
        .list_orders(&tenant("zeta"), &OrderVisibility::Tenant, &filter(20, None))
        .await
        .unwrap();
    assert!(other.orders.is_empty());
}

#[test]
fn a_cursor_that_was_not_issued_by_the_service_is_refused() {
    for bad in ["", "nope", "MTIzOm5vdC1hLXV1aWQ", "%%%"] {
        assert!(OrderCursor::decode(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn events_record_tenant_key_position_transaction_and_actor_and_cannot_be_changed() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    let id = placed(&db, "k").await;
    let (tenant_id, key_text, actor, position_positive, txid_positive): (
        String,
        Option<String>,
        String,
        bool,
        bool,
    ) = sqlx::query_as(
        "SELECT tenant_id, idempotency_key, metadata->>'actor', position > 0, \
             transaction_id > '0'::xid8 FROM events WHERE aggregate_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (tenant_id.as_str(), key_text.as_deref(), actor.as_str()),
        ("acme", Some("k"), "customer:cust-1")
    );
    assert!(position_positive && txid_positive);
    for statement in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(statement).execute(&db.pool).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let comment: String = sqlx::query_scalar(
        "SELECT col_description('store_orders'::regclass, \
         (SELECT attnum FROM pg_attribute WHERE attrelid = 'store_orders'::regclass AND attname = 'idempotency_key'))",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        comment.starts_with("AUDIT-106: Idempotency key"),
        "{comment}"
    );
}

#[tokio::test]
async fn the_verify_fold_notices_a_corrupted_row() {
    let db = TestDatabase::new().await;
    shop(&db).await;
    placed(&db, "k").await;
    sqlx::query("UPDATE inventory SET on_hand = on_hand + 1 WHERE sku = 'A'")
        .execute(&db.pool)
        .await
        .unwrap();
    let report = rebuild_projections::rebuild::verify(&db.pool, "fold_check")
        .await
        .unwrap();
    assert!(!report.is_clean());
    let inventory = report
        .tables
        .iter()
        .find(|t| t.table == "inventory")
        .unwrap();
    assert_eq!((inventory.only_live, inventory.only_rebuilt), (1, 1));
    assert!(
        inventory
            .examples
            .iter()
            .any(|e| e.starts_with("live: (acme,A,")),
        "{:?}",
        inventory.examples
    );
}
