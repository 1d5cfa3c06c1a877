//! Products and keyed stock movements in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures::future::join_all;
use order_domain::stock_adjustment::StockAdjustmentError;
use order_domain::{ProductName, StockDelta, StockReason};
use order_store::{CatalogueCommands, CatalogueError, CatalogueQueries, CheckoutOutcome};
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

fn delta(n: i64) -> StockDelta {
    StockDelta::try_from(n).unwrap()
}

#[tokio::test]
async fn a_retried_stock_receipt_adds_once() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 0).await;
    let catalogue = CatalogueCommands::new(db.pool.clone());
    let staff = as_staff("acme");
    let first = catalogue
        .adjust_stock(
            &staff,
            key("receipt-7"),
            sku("A"),
            delta(50),
            StockReason::Received,
            now(),
        )
        .await
        .unwrap();
    let retry = catalogue
        .adjust_stock(
            &staff,
            key("receipt-7"),
            sku("A"),
            delta(50),
            StockReason::Received,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        (first.outcome, retry.outcome),
        (CheckoutOutcome::Created, CheckoutOutcome::Replayed)
    );
    assert_eq!((first.product.on_hand, retry.product.on_hand), (50, 50));
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 50);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'StockAdjusted'")
            .await,
        1
    );
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn a_stock_key_reused_for_another_movement_is_refused() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 0).await;
    let catalogue = CatalogueCommands::new(db.pool.clone());
    let staff = as_staff("acme");
    catalogue
        .adjust_stock(
            &staff,
            key("r"),
            sku("A"),
            delta(5),
            StockReason::Received,
            now(),
        )
        .await
        .unwrap();
    let err = catalogue
        .adjust_stock(
            &staff,
            key("r"),
            sku("A"),
            delta(6),
            StockReason::Received,
            now(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CatalogueError::Adjustment(StockAdjustmentError::IdempotencyKeyReused)
        ),
        "{err:?}"
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 5);
}

#[tokio::test]
async fn a_negative_adjustment_below_zero_is_refused_and_stores_nothing() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 3).await;
    let catalogue = CatalogueCommands::new(db.pool.clone());
    let staff = as_staff("acme");
    let err = catalogue
        .adjust_stock(
            &staff,
            key("shrink"),
            sku("A"),
            delta(-4),
            StockReason::Adjustment,
            now(),
        )
        .await
        .unwrap_err();
    let CatalogueError::InsufficientStock {
        sku: refused,
        requested,
        available,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!((refused.as_str(), requested, available), ("A", 4, 3));
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'StockAdjusted'")
            .await,
        1
    );
    let down = catalogue
        .adjust_stock(
            &staff,
            key("shrink-2"),
            sku("A"),
            delta(-3),
            StockReason::Count,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(down.product.on_hand, 0);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn stock_of_an_unknown_product_is_refused() {
    let db = TestDatabase::new().await;
    let catalogue = CatalogueCommands::new(db.pool.clone());
    let err = catalogue
        .adjust_stock(
            &as_staff("acme"),
            key("r"),
            sku("GHOST"),
            delta(5),
            StockReason::Received,
            now(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogueError::UnknownSku { .. }), "{err:?}");
    assert_eq!(db.count("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn redefining_a_product_reprices_it_and_keeps_its_stock() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 7).await;
    let catalogue = CatalogueCommands::new(db.pool.clone());
    let product = catalogue
        .define_product(
            &as_staff("acme"),
            sku("A"),
            ProductName::try_from("Renamed").unwrap(),
            pyg(12),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(
        (product.name.as_str(), product.unit_price, product.on_hand),
        ("Renamed", 12, 7)
    );
    let again = catalogue
        .define_product(
            &as_staff("acme"),
            sku("A"),
            ProductName::try_from("Renamed").unwrap(),
            pyg(12),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(again, product, "the same definition again changes nothing");
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Product'")
            .await,
        2
    );
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn products_are_listed_by_sku_page_by_page_and_per_tenant() {
    let db = TestDatabase::new().await;
    for code in ["C", "A", "B", "D", "E"] {
        stocked_product(&db.pool, "acme", code, 10, 1).await;
    }
    stocked_product(&db.pool, "zeta", "Z", 10, 1).await;
    let queries = CatalogueQueries::new(db.pool.clone());
    let first = queries
        .list_products(&tenant("acme"), 2, None)
        .await
        .unwrap();
    assert_eq!(
        first
            .products
            .iter()
            .map(|p| p.sku.as_str())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    let second = queries
        .list_products(&tenant("acme"), 2, first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(
        second
            .products
            .iter()
            .map(|p| p.sku.as_str())
            .collect::<Vec<_>>(),
        ["C", "D"]
    );
    let last = queries
        .list_products(&tenant("acme"), 2, second.next.as_deref())
        .await
        .unwrap();
    assert_eq!(
        last.products
            .iter()
            .map(|p| p.sku.as_str())
            .collect::<Vec<_>>(),
        ["E"]
    );
    assert_eq!(last.next, None);
    assert!(queries
        .find_product(&tenant("acme"), &sku("Z"))
        .await
        .unwrap()
        .is_none());
}

/// Issue 10: concurrent duplicates of an adjustment that takes stock to zero
/// are all answered with the one movement, never "below zero".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_an_adjustment_to_zero_are_all_answered_with_the_one_movement() {
    let db = TestDatabase::new().await;
    let catalogue = Arc::new(CatalogueCommands::new(db.pool.clone()));
    const ROUNDS: usize = 30;
    const DUPLICATES: usize = 16;
    for round in 0..ROUNDS {
        let product = format!("P-{round}");
        stocked_product(&db.pool, "acme", &product, 10, 5).await;
        let results = join_all((0..DUPLICATES).map(|_| {
            let (catalogue, product) = (catalogue.clone(), product.clone());
            tokio::spawn(async move {
                catalogue
                    .adjust_stock(
                        &as_staff("acme"),
                        key(&format!("write-off-{product}")),
                        sku(&product),
                        delta(-5),
                        StockReason::Count,
                        now(),
                    )
                    .await
            })
        }))
        .await;
        let mut created = 0;
        for result in results {
            match result.unwrap() {
                Ok(movement) => {
                    assert_eq!(movement.product.on_hand, 0);
                    created += usize::from(movement.outcome == CheckoutOutcome::Created);
                }
                Err(e) => panic!("round {round}: a duplicate was refused: {e}"),
            }
        }
        assert_eq!(created, 1, "round {round}: one request books the movement");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'StockAdjusted'")
            .await,
        2 * ROUNDS as i64
    );
    assert_read_model_matches_events(&db.pool).await;
}
