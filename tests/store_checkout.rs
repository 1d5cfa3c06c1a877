//! The store's checkout guarantees against a real PostgreSQL: one order per
//! (tenant, key) however many duplicates race, no oversell, no deadlock, and
//! a rejected checkout stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use order_domain::order::OrderError;
use order_store::{
    CatalogueCommands, CheckoutError, CheckoutOutcome, OrderCommands, OrderQueries, OrderVisibility,
};
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_identical_checkouts_make_one_order_and_one_decrement() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "DOG-FOOD", 125_000, 100).await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    let started = Instant::now();
    let results = join_all((0..64).map(|_| {
        let commands = commands.clone();
        tokio::spawn(async move {
            commands
                .place_order(
                    &as_customer("acme", "cust-1"),
                    checkout("cust-1", "k-64", &[("DOG-FOOD", 2)]),
                )
                .await
        })
    }))
    .await;
    eprintln!(
        "64 concurrent duplicates answered in {:?}",
        started.elapsed()
    );
    let placed: Vec<_> = results
        .into_iter()
        .map(|r| r.unwrap().expect("every duplicate is answered, none fails"))
        .collect();
    let created = placed
        .iter()
        .filter(|p| p.outcome == CheckoutOutcome::Created)
        .count();
    assert_eq!(created, 1, "exactly one request creates the order");
    let first = &placed[0].order;
    assert!(placed
        .iter()
        .all(|p| p.order.id == first.id && p.order.order_number == first.order_number));
    assert_eq!(first.id, *order_id("acme", "k-64").as_uuid());
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .await,
        1
    );
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM store_order_items").await, 1);
    assert_eq!(on_hand(&db.pool, "acme", "DOG-FOOD").await, 98);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn a_replay_returns_the_order_as_first_placed_even_after_a_price_change() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let customer = as_customer("acme", "cust-1");
    let first = commands
        .place_order(&customer, checkout("cust-1", "k", &[("A", 3)]))
        .await
        .unwrap();
    assert_eq!(first.outcome, CheckoutOutcome::Created);
    assert_eq!(
        (first.order.total, first.order.lines[0].unit_price),
        (3_000, 1_000)
    );
    stocked_product(&db.pool, "acme", "A", 9_999, 0).await;
    let replay = commands
        .place_order(&customer, checkout("cust-1", "k", &[("A", 3)]))
        .await
        .unwrap();
    assert_eq!(replay.outcome, CheckoutOutcome::Replayed);
    assert_eq!(replay.order, first.order);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 7);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn the_order_is_readable_the_moment_checkout_returns() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    stocked_product(&db.pool, "acme", "B", 250, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let request = checkout_with_note(
        "cust-1",
        "k",
        &[("B", 1), ("A", 2)],
        Some("leave at the door"),
    );
    let placed = commands
        .place_order(&as_customer("acme", "cust-1"), request)
        .await
        .unwrap();
    let read = OrderQueries::new(db.pool.clone())
        .find_order(
            &tenant("acme"),
            order_id("acme", "k"),
            &OrderVisibility::Tenant,
        )
        .await
        .unwrap()
        .expect("read-your-writes: no 404 window");
    assert_eq!(read, placed.order);
    assert_eq!(read.total, 2_250);
    assert_eq!(
        read.lines
            .iter()
            .map(|l| l.sku.as_str())
            .collect::<Vec<_>>(),
        ["B", "A"]
    );
    assert_eq!(read.note.as_deref(), Some("leave at the door"));
    assert_eq!(read.idempotency_key.as_deref(), Some("k"));
}

#[tokio::test]
async fn the_same_key_in_two_tenants_makes_two_unrelated_orders() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    stocked_product(&db.pool, "zeta", "A", 2_000, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let a = commands
        .place_order(
            &as_customer("acme", "c"),
            checkout("c", "shared-key", &[("A", 1)]),
        )
        .await
        .unwrap();
    let z = commands
        .place_order(
            &as_customer("zeta", "c"),
            checkout("c", "shared-key", &[("A", 1)]),
        )
        .await
        .unwrap();
    assert_eq!(
        (a.outcome, z.outcome),
        (CheckoutOutcome::Created, CheckoutOutcome::Created)
    );
    assert_ne!(a.order.id, z.order.id);
    assert_eq!((a.order.total, z.order.total), (1_000, 2_000));
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 2);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 9);
    assert_eq!(on_hand(&db.pool, "zeta", "A").await, 9);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn it_rejects_a_reused_key_with_other_lines_or_another_customer_and_stores_nothing() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    stocked_product(&db.pool, "acme", "B", 1_000, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    commands
        .place_order(
            &as_customer("acme", "cust-1"),
            checkout("cust-1", "k", &[("A", 1)]),
        )
        .await
        .unwrap();
    let events_before = db.count("SELECT count(*) FROM events").await;
    let attempts = [
        (
            as_customer("acme", "cust-1"),
            checkout("cust-1", "k", &[("A", 2)]),
        ),
        (
            as_customer("acme", "cust-1"),
            checkout("cust-1", "k", &[("A", 1), ("B", 1)]),
        ),
        (
            as_customer("acme", "cust-2"),
            checkout("cust-2", "k", &[("A", 1)]),
        ),
    ];
    for (context, request) in attempts {
        let err = commands.place_order(&context, request).await.unwrap_err();
        assert!(
            matches!(
                err,
                CheckoutError::Rejected(OrderError::IdempotencyKeyReused)
            ),
            "{err:?}"
        );
    }
    assert_eq!(db.count("SELECT count(*) FROM events").await, events_before);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 9);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 10);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_unit_goes_to_exactly_one_of_eight_buyers() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "LAST", 500, 1).await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    let results = join_all((0..8).map(|i| {
        let commands = commands.clone();
        tokio::spawn(async move {
            let buyer = format!("buyer-{i}");
            commands
                .place_order(
                    &as_customer("acme", &buyer),
                    checkout(&buyer, &format!("k-{i}"), &[("LAST", 1)]),
                )
                .await
        })
    }))
    .await;
    let (mut sold, mut refused) = (0, 0);
    for result in results {
        match result.unwrap() {
            Ok(p) => {
                assert_eq!(p.outcome, CheckoutOutcome::Created);
                sold += 1;
            }
            Err(CheckoutError::OutOfStock {
                sku,
                requested,
                available,
            }) => {
                assert_eq!((sku.as_str(), requested, available), ("LAST", 1, 0));
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sold, refused), (1, 7));
    assert_eq!(on_hand(&db.pool, "acme", "LAST").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        1
    );
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_of_a_hundred_units_make_exactly_a_hundred_orders() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "HOT", 100, 100).await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    let started = Instant::now();
    let results = join_all((0..200).map(|i| {
        let commands = commands.clone();
        tokio::spawn(async move {
            let buyer = format!("buyer-{i}");
            commands
                .place_order(
                    &as_customer("acme", &buyer),
                    checkout(&buyer, &format!("k-{i}"), &[("HOT", 1)]),
                )
                .await
        })
    }))
    .await;
    eprintln!(
        "200 buyers of 100 units answered in {:?}",
        started.elapsed()
    );
    let mut sold = 0;
    for result in results {
        match result.unwrap() {
            Ok(_) => sold += 1,
            Err(CheckoutError::OutOfStock { available: 0, .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sold, 100);
    assert_eq!(on_hand(&db.pool, "acme", "HOT").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 100);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_orders_of_the_same_two_skus_in_opposite_line_order_never_deadlock() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 1_000).await;
    stocked_product(&db.pool, "acme", "B", 20, 1_000).await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    let started = Instant::now();
    let results = join_all((0..50).map(|i| {
        let commands = commands.clone();
        tokio::spawn(async move {
            let lines: &[(&str, i64)] = if i % 2 == 0 {
                &[("A", 1), ("B", 2)]
            } else {
                &[("B", 2), ("A", 1)]
            };
            let buyer = format!("buyer-{i}");
            commands
                .place_order(
                    &as_customer("acme", &buyer),
                    checkout(&buyer, &format!("k-{i}"), lines),
                )
                .await
        })
    }))
    .await;
    eprintln!(
        "50 crossed two-line orders answered in {:?}",
        started.elapsed()
    );
    for result in results {
        let placed = result.unwrap().expect("no deadlock error reaches a caller");
        assert_eq!(placed.outcome, CheckoutOutcome::Created);
    }
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 950);
    assert_eq!(on_hand(&db.pool, "acme", "B").await, 900);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn an_unknown_sku_is_refused_and_stores_nothing() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 10).await;
    stocked_product(&db.pool, "zeta", "ZETA-ONLY", 10, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let events_before = db.count("SELECT count(*) FROM events").await;
    for lines in [&[("A", 1), ("NOPE", 1)][..], &[("ZETA-ONLY", 1)][..]] {
        let err = commands
            .place_order(&as_customer("acme", "c"), checkout("c", "k", lines))
            .await
            .unwrap_err();
        let CheckoutError::UnknownSku { sku } = err else {
            panic!("{err:?}")
        };
        assert!(matches!(sku.as_str(), "NOPE" | "ZETA-ONLY"));
    }
    assert_eq!(db.count("SELECT count(*) FROM events").await, events_before);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 10);
}

#[tokio::test]
async fn a_checkout_refused_for_stock_stores_nothing_and_its_key_is_evaluated_afresh() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 1).await;
    let commands = OrderCommands::new(db.pool.clone());
    let customer = as_customer("acme", "c");
    let err = commands
        .place_order(&customer, checkout("c", "k", &[("A", 3)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CheckoutError::OutOfStock {
                requested: 3,
                available: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
    order_store::CatalogueCommands::new(db.pool.clone())
        .adjust_stock(
            &as_staff("acme"),
            key("more"),
            sku("A"),
            5.try_into().unwrap(),
            order_domain::StockReason::Received,
            now(),
        )
        .await
        .unwrap();
    let placed = commands
        .place_order(&customer, checkout("c", "k", &[("A", 3)]))
        .await
        .unwrap();
    assert_eq!(placed.outcome, CheckoutOutcome::Created);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 3);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn a_failing_projection_leaves_no_event_behind() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 10).await;
    // Inject a projection failure after the events are inserted: the
    // store_orders insert raises.
    sqlx::raw_sql(
        "CREATE FUNCTION fail_projection() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'injected projection failure'; END $$; \
         CREATE TRIGGER fail_projection BEFORE INSERT ON store_orders \
         FOR EACH ROW EXECUTE FUNCTION fail_projection();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let commands = OrderCommands::new(db.pool.clone());
    let customer = as_customer("acme", "c");
    let err = commands
        .place_order(&customer, checkout("c", "k", &[("A", 2)]))
        .await
        .unwrap_err();
    assert!(matches!(err, CheckoutError::Store(_)), "{err:?}");
    assert!(
        err.to_string().contains("injected projection failure"),
        "{err}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM store_orders").await, 0);
    assert_eq!(
        on_hand(&db.pool, "acme", "A").await,
        10,
        "the stock decrement was rolled back too"
    );
    sqlx::query("DROP TRIGGER fail_projection ON store_orders")
        .execute(&db.pool)
        .await
        .unwrap();
    let placed = commands
        .place_order(&customer, checkout("c", "k", &[("A", 2)]))
        .await
        .unwrap();
    assert_eq!(placed.outcome, CheckoutOutcome::Created);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 8);
    assert_read_model_matches_events(&db.pool).await;
}

#[tokio::test]
async fn the_store_itself_refuses_a_second_stream_for_one_tenant_and_key() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 10).await;
    OrderCommands::new(db.pool.clone())
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 1)]))
        .await
        .unwrap();
    // Even with a stream id not derived from (tenant, key), a second
    // OrderPlaced for the pair is refused by the unique index.
    let err = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, tenant_id, idempotency_key) \
         SELECT aggregate_type, gen_random_uuid()::text, 1, event_type, event_version, payload, \
         metadata, tenant_id, idempotency_key FROM events WHERE event_type = 'OrderPlaced'",
    )
    .execute(&db.pool)
    .await
    .unwrap_err();
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.constraint(), Some("events_one_stream_per_key"));
}

#[tokio::test]
async fn a_deadlock_reported_by_postgresql_is_retried_without_the_caller_noticing() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 10, 10).await;
    // The first two store_orders inserts fail as deadlock victims; sequences
    // are not rolled back, so the third attempt goes through.
    sqlx::raw_sql(
        "CREATE SEQUENCE deadlocks; \
         CREATE FUNCTION fake_deadlock() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN IF nextval('deadlocks') <= 2 THEN \
              RAISE EXCEPTION 'simulated deadlock' USING ERRCODE = '40P01'; \
            END IF; RETURN NEW; END $$; \
         CREATE TRIGGER fake_deadlock BEFORE INSERT ON store_orders \
         FOR EACH ROW EXECUTE FUNCTION fake_deadlock();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let placed = OrderCommands::new(db.pool.clone())
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 4)]))
        .await
        .expect("the deadlock is retried transparently");
    assert_eq!(placed.outcome, CheckoutOutcome::Created);
    let attempts: i64 = sqlx::query_scalar("SELECT last_value FROM deadlocks")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(
        db.count("SELECT count(*) FROM events WHERE aggregate_type = 'Order'")
            .await,
        1
    );
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 6);
    assert_read_model_matches_events(&db.pool).await;
}

/// Issue 10: the duplicates of a checkout that takes the last units must be
/// answered with its order, never "out of stock". The race is probabilistic
/// (a duplicate must load the empty stream before the winner commits, then
/// reach the stock guard after it), so it is run many times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_racing_for_the_last_units_are_all_answered_with_the_one_order() {
    let db = TestDatabase::new().await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    const ROUNDS: usize = 30;
    const DUPLICATES: usize = 16;
    for round in 0..ROUNDS {
        let product = format!("LAST-{round}");
        stocked_product(&db.pool, "acme", &product, 5_000, 2).await;
        let key_text = format!("last-units-{round}");
        let results = join_all((0..DUPLICATES).map(|_| {
            let (commands, product, key_text) =
                (commands.clone(), product.clone(), key_text.clone());
            tokio::spawn(async move {
                commands
                    .place_order(
                        &as_customer("acme", "cust-1"),
                        checkout("cust-1", &key_text, &[(&product, 2)]),
                    )
                    .await
            })
        }))
        .await;
        let mut created = 0;
        for result in results {
            match result.unwrap() {
                Ok(placed) => {
                    assert_eq!(placed.order.id, *order_id("acme", &key_text).as_uuid());
                    created += usize::from(placed.outcome == CheckoutOutcome::Created);
                }
                Err(e) => panic!("round {round}: a duplicate was refused: {e}"),
            }
        }
        assert_eq!(
            created, 1,
            "round {round}: exactly one request creates the order"
        );
        assert_eq!(on_hand(&db.pool, "acme", &product).await, 0);
    }
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders").await,
        ROUNDS as i64
    );
    assert_read_model_matches_events(&db.pool).await;
}

/// Duplicates of A and a different customer's B race for the same last
/// units: one of A and B gets them, and every duplicate of A sees A's one
/// outcome (all answered with A's order, or all refused for stock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_of_one_checkout_racing_another_for_the_last_units_agree_on_its_outcome() {
    let db = TestDatabase::new().await;
    let commands = Arc::new(OrderCommands::new(db.pool.clone()));
    const ROUNDS: usize = 30;
    const DUPLICATES: usize = 12;
    let mut a_won = 0;
    for round in 0..ROUNDS {
        let product = format!("LAST-{round}");
        stocked_product(&db.pool, "acme", &product, 5_000, 3).await;
        let a_key = format!("a-{round}");
        let b_key = format!("b-{round}");
        let requests = (0..=DUPLICATES).map(|i| {
            let (commands, product) = (commands.clone(), product.clone());
            // Request 0 is B's; B is sent between A's duplicates.
            let (who, key_text) = if i == DUPLICATES / 2 {
                ("cust-b", b_key.clone())
            } else {
                ("cust-a", a_key.clone())
            };
            tokio::spawn(async move {
                let result = commands
                    .place_order(
                        &as_customer("acme", who),
                        checkout(who, &key_text, &[(&product, 3)]),
                    )
                    .await;
                (who, result)
            })
        });
        let results: Vec<_> = join_all(requests)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let a_outcomes: Vec<Result<uuid::Uuid, (i64, i64)>> = results
            .iter()
            .filter(|(who, _)| *who == "cust-a")
            .map(|(_, r)| match r {
                Ok(placed) => Ok(placed.order.id),
                Err(CheckoutError::OutOfStock {
                    requested,
                    available,
                    ..
                }) => Err((*requested, *available)),
                Err(other) => panic!("round {round}: unexpected answer to A: {other}"),
            })
            .collect();
        let b_placed = match &results.iter().find(|(who, _)| *who == "cust-b").unwrap().1 {
            Ok(placed) => {
                assert_eq!(placed.outcome, CheckoutOutcome::Created);
                true
            }
            Err(CheckoutError::OutOfStock {
                requested: 3,
                available: 0,
                ..
            }) => false,
            Err(other) => panic!("round {round}: unexpected answer to B: {other}"),
        };
        let a_placed = a_outcomes[0].is_ok();
        assert!(
            a_outcomes.iter().all(|o| o.is_ok() == a_placed),
            "round {round}: A's duplicates disagree: {a_outcomes:?}"
        );
        assert_ne!(
            a_placed, b_placed,
            "round {round}: exactly one of A and B gets the units"
        );
        if a_placed {
            a_won += 1;
            let a_id = *order_id("acme", &a_key).as_uuid();
            assert!(a_outcomes.iter().all(|o| *o == Ok(a_id)));
            let created = results
                .iter()
                .filter(|(who, r)| {
                    *who == "cust-a"
                        && r.as_ref()
                            .is_ok_and(|p| p.outcome == CheckoutOutcome::Created)
                })
                .count();
            assert_eq!(
                created, 1,
                "round {round}: one of A's duplicates creates it"
            );
        } else {
            assert!(a_outcomes.iter().all(|o| *o == Err((3, 0))));
        }
        assert_eq!(on_hand(&db.pool, "acme", &product).await, 0);
    }
    eprintln!("A won {a_won} of {ROUNDS} rounds");
    assert_eq!(
        db.count("SELECT count(*) FROM store_orders").await,
        ROUNDS as i64
    );
    assert_read_model_matches_events(&db.pool).await;
}

/// A key reused with a SKU the catalogue does not have is a reused key (the
/// order exists), as the contract's table puts it, not an unknown SKU; on a
/// fresh process (which has not seen the key) as on the one that placed it.
#[tokio::test]
async fn a_reused_key_with_an_unknown_sku_is_a_reused_key() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let placing = OrderCommands::new(db.pool.clone());
    placing
        .place_order(
            &as_customer("acme", "cust-1"),
            checkout("cust-1", "k", &[("A", 1)]),
        )
        .await
        .unwrap();
    for commands in [placing, OrderCommands::new(db.pool.clone())] {
        let err = commands
            .place_order(
                &as_customer("acme", "cust-1"),
                checkout("cust-1", "k", &[("NO-SUCH", 1)]),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                CheckoutError::Rejected(OrderError::IdempotencyKeyReused)
            ),
            "{err:?}"
        );
    }
}

/// The checkout prices from a per-process cache; a price changed since (by
/// another process) is refused by the store and the checkout re-priced:
/// never an order at the old price.
#[tokio::test]
async fn a_checkout_after_a_price_change_elsewhere_is_placed_at_the_new_price() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let commands = OrderCommands::new(db.pool.clone());
    let customer = as_customer("acme", "cust-1");
    let first = commands
        .place_order(&customer, checkout("cust-1", "k1", &[("A", 1)]))
        .await
        .unwrap();
    assert_eq!(first.order.lines[0].unit_price, 1_000);
    // Another process (its own CatalogueCommands) renames and reprices A.
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
    let second = commands
        .place_order(&customer, checkout("cust-1", "k2", &[("A", 2)]))
        .await
        .unwrap();
    assert_eq!(second.outcome, CheckoutOutcome::Created);
    assert_eq!(
        (
            second.order.lines[0].unit_price,
            second.order.lines[0].name.as_str(),
            second.order.total
        ),
        (1_250, "Dog food, new bag", 2_500)
    );
    let stored: i64 = sqlx::query_scalar(
        "SELECT (payload #>> '{OrderPlaced,lines,0,unit_price}')::bigint FROM events \
         WHERE event_type = 'OrderPlaced' AND payload #>> '{OrderPlaced,idempotency_key}' = 'k2'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stored, 1_250, "the event holds the new price");
    assert_read_model_matches_events(&db.pool).await;
}

/// A retry reaching a process that has never seen its key (another
/// replica, or after a restart) is found by the append itself and answered
/// with the order; nothing is stored twice.
#[tokio::test]
async fn a_retry_on_a_process_that_never_saw_the_key_is_a_replay() {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    let customer = as_customer("acme", "cust-1");
    let first = OrderCommands::new(db.pool.clone())
        .place_order(&customer, checkout("cust-1", "k", &[("A", 3)]))
        .await
        .unwrap();
    let events = db.count("SELECT count(*) FROM events").await;
    let retry = OrderCommands::new(db.pool.clone())
        .place_order(&customer, checkout("cust-1", "k", &[("A", 3)]))
        .await
        .unwrap();
    assert_eq!(retry.outcome, CheckoutOutcome::Replayed);
    assert_eq!(retry.order, first.order);
    assert_eq!(db.count("SELECT count(*) FROM events").await, events);
    assert_eq!(on_hand(&db.pool, "acme", "A").await, 7);
}

/// The read side's own guard (`store_orders_tenant_idempotency_key`): even
/// a writer that bypassed the event store could not give one (tenant, key)
/// two order rows; another tenant may use the same key, and orders placed
/// without a key do not collide.
#[tokio::test]
async fn the_read_model_refuses_a_second_order_row_for_a_tenants_key() {
    let db = TestDatabase::new().await;
    let insert = |tenant: &'static str, number: &'static str, key: Option<&'static str>| {
        let pool = db.pool.clone();
        async move {
            sqlx::query(
                "INSERT INTO store_orders (id, tenant_id, order_number, customer_id, \
                   idempotency_key, status, currency, total, placed_at, updated_at, \
                   last_event_sequence, units) \
                 VALUES (gen_random_uuid(), $1, $2, 'c', $3, 'placed', 'PYG', 1000, now(), now(), 1, 1)",
            )
            .bind(tenant)
            .bind(number)
            .bind(key)
            .execute(&pool)
            .await
        }
    };
    insert("acme", "ORD-1", Some("k-1")).await.unwrap();
    let refused = insert("acme", "ORD-2", Some("k-1")).await.unwrap_err();
    let constraint = refused
        .as_database_error()
        .and_then(|e| e.constraint().map(str::to_owned));
    assert_eq!(
        constraint.as_deref(),
        Some("store_orders_tenant_idempotency_key"),
        "{refused}"
    );
    insert("zeta", "ORD-1", Some("k-1")).await.unwrap();
    insert("acme", "ORD-3", None).await.unwrap();
    insert("acme", "ORD-4", None).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM store_orders")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 4);
}
