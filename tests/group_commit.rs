//! Group commit against a real PostgreSQL: checkouts stored in one batch
//! (one transaction) each get their own answer, one checkout's refusal or
//! failure never fails its neighbours, and the storms that hold for lone
//! appends (duplicates, last units, SKUs locked in opposite orders) hold
//! for batches, also across two processes' writers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use order_domain::order::OrderError;
use order_store::{
    CatalogueCommands, CheckoutError, CheckoutOutcome, GroupCommit, GroupCommitSettings,
    OrderCommands, PlacedOrder,
};
use sqlx::{Connection, PgConnection, PgPool};
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;
use tokio::task::JoinHandle;

fn grouped(pool: &PgPool, writers: usize) -> (Arc<OrderCommands>, GroupCommit) {
    let writers = GroupCommit::start(
        pool.clone(),
        GroupCommitSettings {
            writers,
            max_batch: 32,
        },
    );
    let commands = OrderCommands::new(pool.clone()).with_group_commit(writers.clone());
    (Arc::new(commands), writers)
}

type Answer = Result<PlacedOrder, CheckoutError>;

fn place(
    commands: &Arc<OrderCommands>,
    customer: &str,
    key: &str,
    lines: &[(&str, i64)],
) -> JoinHandle<Answer> {
    place_with_note(commands, customer, key, lines, None)
}

fn place_with_note(
    commands: &Arc<OrderCommands>,
    customer: &str,
    key: &str,
    lines: &[(&str, i64)],
    note: Option<&str>,
) -> JoinHandle<Answer> {
    let commands = Arc::clone(commands);
    let context = as_customer("acme", customer);
    let checkout = checkout_with_note(customer, key, lines, note);
    tokio::spawn(async move { commands.place_order(&context, checkout).await })
}

/// Polls `check` every 10 ms until it holds, or fails with `what`.
async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A transaction on its own connection holding `sku`'s inventory row, so
/// that a writer storing a checkout of it waits (and the checkouts sent
/// meanwhile queue up behind it, to be stored as one batch).
async fn hold_inventory_row(db: &TestDatabase, sku: &str) -> PgConnection {
    let mut conn = PgConnection::connect_with(&db.options()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("SELECT 1 FROM inventory WHERE tenant_id = 'acme' AND sku = $1 FOR UPDATE")
        .bind(sku)
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn a_writer_waits_for_a_lock(db: &TestDatabase) {
    let pool = db.pool.clone();
    wait_until("a writer waits for the held inventory row", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                > 0
        }
    })
    .await;
}

async fn queued(writers: &GroupCommit, appends: usize) {
    wait_until(&format!("{appends} appends wait for the writer"), || {
        let waiting = writers.waiting();
        async move { waiting == appends }
    })
    .await;
}

/// The transaction ids of the events of these orders' streams.
async fn transactions_of(pool: &PgPool, keys: &[&str]) -> Vec<String> {
    let ids: Vec<String> = keys
        .iter()
        .map(|key| order_id("acme", key).to_string())
        .collect();
    sqlx::query_scalar(
        "SELECT DISTINCT transaction_id::text FROM events \
         WHERE tenant_id = 'acme' AND aggregate_type = 'Order' AND aggregate_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_checkout_of_one_batch_gets_its_own_answer() {
    let db = TestDatabase::new().await;
    for (sku, stock) in [("BLOCK", 100), ("A", 10), ("B", 10), ("SCARCE", 1)] {
        stocked_product(&db.pool, "acme", sku, 1_000, stock).await;
    }
    // Placed earlier, by another process: this one has not seen the key.
    OrderCommands::new(db.pool.clone())
        .place_order(
            &as_customer("acme", "cust-r"),
            checkout("cust-r", "k-reused", &[("A", 1)]),
        )
        .await
        .unwrap();

    let (commands, writers) = grouped(&db.pool, 1);
    let holder = hold_inventory_row(&db, "BLOCK").await;
    let blocked = place(&commands, "cust-0", "k-block", &[("BLOCK", 1)]);
    a_writer_waits_for_a_lock(&db).await;

    let short = place(&commands, "cust-1", "k-short", &[("SCARCE", 2)]);
    let last = place(&commands, "cust-2", "k-last", &[("SCARCE", 1)]);
    let duplicate_a = place(&commands, "cust-3", "k-dup", &[("A", 1)]);
    let duplicate_b = place(&commands, "cust-3", "k-dup", &[("A", 1)]);
    let reused = place(&commands, "cust-r", "k-reused", &[("B", 2)]);
    let a_then_b = place(&commands, "cust-4", "k-ab", &[("A", 1), ("B", 1)]);
    let b_then_a = place(&commands, "cust-5", "k-ba", &[("B", 1), ("A", 1)]);
    queued(&writers, 7).await;
    holder.close().await.unwrap();

    let blocked = blocked.await.unwrap().unwrap();
    assert_eq!(blocked.outcome, CheckoutOutcome::Created);
    match short.await.unwrap() {
        Err(CheckoutError::OutOfStock {
            requested: 2,
            available,
            ..
        }) => assert!(available <= 1, "available {available}"),
        other => panic!("two of one unit: {other:?}"),
    }
    assert_eq!(
        last.await.unwrap().unwrap().outcome,
        CheckoutOutcome::Created
    );
    let mut duplicates = [
        duplicate_a.await.unwrap().unwrap(),
        duplicate_b.await.unwrap().unwrap(),
    ];
    duplicates.sort_by_key(|placed| placed.outcome != CheckoutOutcome::Created);
    assert_eq!(duplicates[0].outcome, CheckoutOutcome::Created);
    assert_eq!(duplicates[1].outcome, CheckoutOutcome::Replayed);
    assert_eq!(duplicates[0].order, duplicates[1].order);
    match reused.await.unwrap() {
        Err(CheckoutError::Rejected(OrderError::IdempotencyKeyReused)) => {}
        other => panic!("a reused key with other lines: {other:?}"),
    }
    for pair in [a_then_b, b_then_a] {
        assert_eq!(
            pair.await.unwrap().unwrap().outcome,
            CheckoutOutcome::Created
        );
    }

    // The four orders placed after the lock was released were one batch:
    // one transaction, not the blocked checkout's.
    let batch = transactions_of(&db.pool, &["k-last", "k-dup", "k-ab", "k-ba"]).await;
    assert_eq!(batch.len(), 1, "one transaction for the batch: {batch:?}");
    assert_ne!(transactions_of(&db.pool, &["k-block"]).await, batch);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        6
    );
    assert_eq!(on_hand(&db.pool, "acme", "BLOCK").await, 99);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 10 - 1 - 1 - 2);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 10 - 2);
    assert_eq!(on_hand(&db.pool, "acme", "SCARCE").await, 0);
    assert_read_model_matches_events(&db.pool).await;
}

/// The batch checks each checkout's prices against the catalogue rows it
/// locked: a checkout priced from this process's stale cache is refused in
/// the batch and placed at the new price, its neighbour stored at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_priced_before_a_change_elsewhere_is_repriced_and_its_neighbour_stored() {
    let db = TestDatabase::new().await;
    for sku in ["BLOCK", "A", "B"] {
        stocked_product(&db.pool, "acme", sku, 1_000, 10).await;
    }
    let (commands, writers) = grouped(&db.pool, 1);
    // This process's price cache learns A and B at 1,000.
    place(&commands, "cust-0", "k-warm", &[("A", 1), ("B", 1)])
        .await
        .unwrap()
        .unwrap();
    // Another process renames and reprices A.
    CatalogueCommands::new(db.pool.clone())
        .define_product(
            &as_staff("acme"),
            sku("A"),
            order_domain::ProductName::try_from("Dog food, new bag").unwrap(),
            pyg(1_250),
            now(),
        )
        .await
        .unwrap();

    let holder = hold_inventory_row(&db, "BLOCK").await;
    let blocked = place(&commands, "cust-1", "k-block", &[("BLOCK", 1)]);
    a_writer_waits_for_a_lock(&db).await;
    let stale = place(&commands, "cust-2", "k-stale", &[("B", 1), ("A", 1)]);
    let fresh = place(&commands, "cust-3", "k-fresh", &[("B", 2)]);
    queued(&writers, 2).await;
    holder.close().await.unwrap();

    assert_eq!(
        blocked.await.unwrap().unwrap().outcome,
        CheckoutOutcome::Created
    );
    let fresh = fresh.await.unwrap().unwrap();
    assert_eq!(fresh.outcome, CheckoutOutcome::Created);
    assert_eq!(fresh.order.total, 2_000);
    let stale = stale.await.unwrap().unwrap();
    assert_eq!(stale.outcome, CheckoutOutcome::Created);
    let a_line = stale
        .order
        .lines
        .iter()
        .find(|line| line.sku.as_str() == "A")
        .unwrap();
    assert_eq!(
        (a_line.unit_price, a_line.name.as_str(), stale.order.total),
        (1_250, "Dog food, new bag", 2_250)
    );
    // Refused in the batch that stored its neighbour, stored after it.
    let fresh_batch = transactions_of(&db.pool, &["k-fresh"]).await;
    assert_eq!(fresh_batch.len(), 1);
    assert_ne!(transactions_of(&db.pool, &["k-stale"]).await, fresh_batch);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 10 - 1 - 1);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 10 - 1 - 1 - 2);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_that_fails_its_batch_fails_alone() {
    let db = TestDatabase::new().await;
    for sku in ["BLOCK", "A"] {
        stocked_product(&db.pool, "acme", sku, 1_000, 100).await;
    }
    // An error no append expects (not a refusal, not a lost race): the
    // whole batch's transaction aborts.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_the_note() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.note = 'explode' THEN RAISE EXCEPTION 'this note is refused'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER refuse_the_note BEFORE INSERT ON store_orders \
         FOR EACH ROW EXECUTE FUNCTION refuse_the_note();",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let (commands, writers) = grouped(&db.pool, 1);
    let holder = hold_inventory_row(&db, "BLOCK").await;
    let blocked = place(&commands, "cust-0", "k-block", &[("BLOCK", 1)]);
    a_writer_waits_for_a_lock(&db).await;
    let before = place(&commands, "cust-1", "k-1", &[("A", 1)]);
    let offender = place_with_note(&commands, "cust-2", "k-2", &[("A", 1)], Some("explode"));
    let after = place(&commands, "cust-3", "k-3", &[("A", 1)]);
    queued(&writers, 3).await;
    holder.close().await.unwrap();

    assert_eq!(
        blocked.await.unwrap().unwrap().outcome,
        CheckoutOutcome::Created
    );
    match offender.await.unwrap() {
        Err(CheckoutError::Store(err)) => {
            assert!(err.to_string().contains("this note is refused"), "{err}")
        }
        other => panic!("the offender gets its own error: {other:?}"),
    }
    for neighbour in [before, after] {
        assert_eq!(
            neighbour.await.unwrap().unwrap().outcome,
            CheckoutOutcome::Created
        );
    }
    assert!(transactions_of(&db.pool, &["k-2"]).await.is_empty());
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 98);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_through_two_processes_writers_make_one_order() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "DOG-FOOD", 125_000, 100).await;
    let (first, _w1) = grouped(&db.pool, 2);
    let (second, _w2) = grouped(&db.pool, 2);
    let answers = join_all((0..64).map(|i| {
        let commands = if i % 2 == 0 { &first } else { &second };
        place(commands, "cust-1", "k-64", &[("DOG-FOOD", 2)])
    }))
    .await;
    let placed: Vec<PlacedOrder> = answers
        .into_iter()
        .map(|answer| answer.unwrap().expect("every duplicate is answered"))
        .collect();
    let created = placed
        .iter()
        .filter(|p| p.outcome == CheckoutOutcome::Created)
        .count();
    assert_eq!(created, 1, "exactly one request creates the order");
    assert!(placed.iter().all(|p| p.order == placed[0].order));
    assert_eq!(on_hand(&db.pool, "acme", "DOG-FOOD").await, 98);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_units_go_to_as_many_buyers_as_they_serve_and_duplicates_get_their_order() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "LAST", 1_000, 5).await;
    let (first, _w1) = grouped(&db.pool, 2);
    let (second, _w2) = grouped(&db.pool, 2);
    // 40 buyers, each sending its checkout twice (through both processes).
    let answers = join_all((0..80).map(|i| {
        let commands = if i % 2 == 0 { &first } else { &second };
        let buyer = i / 2;
        place(
            commands,
            &format!("cust-{buyer}"),
            &format!("k-{buyer}"),
            &[("LAST", 1)],
        )
    }))
    .await;
    let answers: Vec<Answer> = answers.into_iter().map(|a| a.unwrap()).collect();
    let mut buyers_served = 0;
    for pair in answers.chunks(2) {
        match (&pair[0], &pair[1]) {
            (Ok(one), Ok(other)) => {
                assert_eq!(one.order, other.order, "a duplicate gets its order");
                let created = [one, other]
                    .iter()
                    .filter(|p| p.outcome == CheckoutOutcome::Created)
                    .count();
                assert_eq!(created, 1);
                buyers_served += 1;
            }
            (Err(CheckoutError::OutOfStock { .. }), Err(CheckoutError::OutOfStock { .. })) => {}
            other => panic!("a buyer's two requests disagree: {other:?}"),
        }
    }
    assert_eq!(buyers_served, 5);
    assert_eq!(on_hand(&db.pool, "acme", "LAST").await, 0);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_locking_skus_in_opposite_orders_all_succeed_across_two_processes() {
    let db = TestDatabase::new().await;
    let skus = ["S1", "S2", "S3", "S4"];
    for sku in skus {
        stocked_product(&db.pool, "acme", sku, 1_000, 10_000).await;
    }
    let (first, _w1) = grouped(&db.pool, 2);
    let (second, _w2) = grouped(&db.pool, 2);
    let answers = join_all((0..240).map(|i| {
        let commands = if i % 2 == 0 { &first } else { &second };
        let (x, y) = (skus[i % 4], skus[(i / 4 + 1 + i) % 4]);
        let lines: Vec<(&str, i64)> = if x == y {
            vec![(x, 1)]
        } else if i % 3 == 0 {
            vec![(y, 1), (x, 1)]
        } else {
            vec![(x, 1), (y, 1)]
        };
        place(commands, &format!("cust-{i}"), &format!("k-{i}"), &lines)
    }))
    .await;
    let mut units = 0;
    for answer in answers {
        let placed = answer.unwrap().expect("no checkout fails");
        assert_eq!(placed.outcome, CheckoutOutcome::Created);
        units += placed.order.lines.len() as i64;
    }
    let mut left = 0;
    for sku in skus {
        left += on_hand(&db.pool, "acme", sku).await;
    }
    assert_eq!(left, 4 * 10_000 - units);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_waiting_longer_than_the_pool_would_is_refused_fast_and_never_stored() {
    let db = TestDatabase::new().await;
    for sku in ["BLOCK", "A"] {
        stocked_product(&db.pool, "acme", sku, 1_000, 100).await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_millis(200))
        .connect_with(db.options())
        .await
        .unwrap();
    let (commands, _writers) = grouped(&pool, 1);
    let holder = hold_inventory_row(&db, "BLOCK").await;
    let blocked = place(&commands, "cust-0", "k-block", &[("BLOCK", 1)]);
    a_writer_waits_for_a_lock(&db).await;

    let sent = Instant::now();
    match place(&commands, "cust-1", "k-late", &[("A", 1)])
        .await
        .unwrap()
    {
        Err(CheckoutError::Store(err)) => assert!(err.is_unavailable(), "{err}"),
        other => panic!("a checkout no writer could take: {other:?}"),
    }
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );

    holder.close().await.unwrap();
    assert_eq!(
        blocked.await.unwrap().unwrap().outcome,
        CheckoutOutcome::Created
    );
    // The writer has gone past the withdrawn checkout once it stores the next.
    assert_eq!(
        place(&commands, "cust-2", "k-next", &[("A", 1)])
            .await
            .unwrap()
            .unwrap()
            .outcome,
        CheckoutOutcome::Created
    );
    assert!(transactions_of(&db.pool, &["k-late"]).await.is_empty());
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 99);
}
