//! The outbox relay against a real PostgreSQL and a real nats-server with
//! JetStream (a private one per test): one message per event, in each
//! stream's order, through relay crashes, a late-committing transaction, a
//! takeover and a broker outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use order_store::OrderCommands;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use store_orders_tests::commit_cutting_proxy::CommitCuttingProxy;
use store_orders_tests::fixtures::*;
use store_orders_tests::nats::{
    assert_one_message_per_event_in_stream_order, eventually, every_event_published_once,
    stored_event_ids, NatsServer, RelayProcess,
};
use store_orders_tests::network_namespace::NetworkNamespace;
use store_orders_tests::own_cluster::OwnCluster;
use store_orders_tests::TestDatabase;

const STREAM: &str = "ORDER_EVENTS";
const SERVICE: &str = env!("CARGO_BIN_EXE_order-service-under-test");

async fn wait_until_published(nats: &NatsServer, db: &TestDatabase, limit: Duration) {
    let expected = stored_event_ids(&db.pool).await.len();
    eventually(limit, "every event published", || async {
        nats.messages(STREAM).await.len() >= expected
    })
    .await;
}

/// What `relay` says it is (`/readyz`'s `role`), or "" while it does not
/// answer.
async fn role(relay: &RelayProcess) -> String {
    relay
        .readiness()
        .await
        .and_then(|(_, r)| r["role"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A de-duplication window far shorter than the outages of the tests that
/// set it: what they keep to one message per event is the relay's chain.
const SHORT_WINDOW: [(&str, &str); 1] = [("ORDERS_RELAY_DUPLICATE_WINDOW", "1s")];

/// The relay logged that it found part of its batch in the stream (its
/// chain, after the checkpoint) and did not publish it again.
fn said_the_stream_held_part_of_the_batch(relay: &RelayProcess) {
    let log = relay.log();
    assert!(
        log.contains("the stream already holds events after the checkpoint"),
        "{log}"
    );
}

/// Waits until `relay` is ready with nothing left to publish.
async fn caught_up(relay: &RelayProcess, limit: Duration, what: &str) {
    eventually(limit, what, || async {
        relay
            .readiness()
            .await
            .is_some_and(|(s, r)| s == 200 && r["lag_events"] == 0)
    })
    .await;
}

/// Places `n` orders of one unit each, `concurrency` at a time, and pays
/// every third one (a stream of two events).
async fn place_orders(pool: &sqlx::PgPool, prefix: &str, n: usize, concurrency: usize) {
    place_orders_of(pool, "acme", prefix, n, concurrency).await;
}

/// As [`place_orders`], for `tenant`.
async fn place_orders_of(
    pool: &sqlx::PgPool,
    tenant: &'static str,
    prefix: &str,
    n: usize,
    concurrency: usize,
) {
    let commands = Arc::new(OrderCommands::new(pool.clone()));
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in keys.chunks(concurrency) {
        join_all(chunk.iter().enumerate().map(|(i, key)| {
            let (commands, key) = (commands.clone(), key.clone());
            async move {
                let placed = commands
                    .place_order(&as_customer(tenant, "c"), checkout("c", &key, &[("A", 1)]))
                    .await
                    .unwrap();
                if i % 3 == 0 {
                    commands
                        .mark_paid(
                            &as_staff(tenant),
                            order_domain::OrderId::from(placed.order.id),
                            now(),
                        )
                        .await
                        .unwrap();
                }
            }
        }))
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_orders_placed_concurrently_arrives_once_and_in_stream_order() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    let relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    place_orders(&db.pool, "k", 300, 16).await;
    // Keys settled without an order: their one event leaves like any other.
    let commands = OrderCommands::new(db.pool.clone());
    for i in 0..10 {
        let gone = key(&format!("gone-{i}"));
        let by = if i % 2 == 0 {
            as_staff("acme")
        } else {
            as_customer("acme", "c")
        };
        commands.abandon_checkout(&by, &gone, now()).await.unwrap();
    }
    // Orders left unpaid expire: their OrderExpired leaves like any other.
    let expiry = order_store::UnpaidExpiry {
        batch: 1_000,
        ..order_store::UnpaidExpiry::default()
    };
    let an_hour_later = chrono::Utc::now() + chrono::Duration::hours(1);
    let unpaid: i64 =
        sqlx::query_scalar("SELECT count(*) FROM store_orders WHERE status = 'placed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(unpaid > 100, "{unpaid} of the 300 orders unpaid");
    let sweep = order_store::expire_unpaid_orders(&db.pool, &commands, &expiry, an_hour_later)
        .await
        .unwrap();
    assert_eq!(
        i64::try_from(sweep.expired).unwrap(),
        unpaid,
        "every unpaid order expired"
    );
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    let messages = nats.messages(STREAM).await;
    assert_one_message_per_event_in_stream_order(&stored_event_ids(&db.pool).await, &messages);
    let abandoned: Vec<&Value> = messages
        .iter()
        .filter(|(subject, _, _)| subject == "orders.acme.order.CheckoutAbandoned")
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(abandoned.len(), 10);
    let by_customer = abandoned
        .iter()
        .find(|body| body["payload"]["CheckoutAbandoned"]["idempotency_key"] == "gone-1")
        .unwrap();
    assert_eq!(by_customer["event_version"], "1");
    assert_eq!(by_customer["sequence"], 1);
    assert_eq!(
        by_customer["payload"]["CheckoutAbandoned"]["by"],
        serde_json::json!({"customer": "c"})
    );
    assert_eq!(
        by_customer["aggregate_id"], by_customer["payload"]["CheckoutAbandoned"]["order_id"],
        "the stream the order would have had"
    );
    let expired: Vec<&Value> = messages
        .iter()
        .filter(|(subject, _, _)| subject == "orders.acme.order.OrderExpired")
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(i64::try_from(expired.len()).unwrap(), unpaid);
    assert_eq!(expired[0]["event_version"], "1");
    assert_eq!(expired[0]["metadata"]["actor"], "system:unpaid-expiry");
    assert_eq!(
        expired[0]["payload"]["OrderExpired"]["restocked"],
        serde_json::json!([{"sku": "A", "quantity": 1}])
    );
    let (placed_subject, _, placed) = messages
        .iter()
        .find(|(subject, _, _)| subject.ends_with(".order.OrderPlaced"))
        .unwrap();
    assert!(placed_subject.starts_with("orders.acme.order."));
    assert_eq!(placed["event_version"], "2", "published as stored");
    assert!(placed["payload"]["OrderPlaced"]["order_number"].is_string());
    assert_eq!(placed["payload"]["OrderPlaced"]["channel"], "api");
    assert_eq!(placed["metadata"]["tenant_id"], "acme");
    assert!(placed["position"].as_i64().unwrap() > 0);
    // Each message carries its event's commit-order coordinates as stored.
    let stored: std::collections::HashMap<String, (i64, i64)> =
        sqlx::query_as::<_, (String, String, String, i64, i64, i64)>(
            "SELECT tenant_id, lower(aggregate_type), aggregate_id, sequence, \
                transaction_id::text::bigint, position FROM events",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(tenant, kind, id, sequence, xid, position)| {
            (format!("{tenant}/{kind}/{id}/{sequence}"), (xid, position))
        })
        .collect();
    let mut checked = 0;
    for (id, xid, position) in nats.message_coordinates(STREAM).await {
        if id.contains("/order/") {
            assert_eq!(stored.get(&id), Some(&(xid, position)), "{id}");
            checked += 1;
        }
    }
    assert!(
        checked >= 300,
        "the coordinates of {checked} order events checked"
    );
    let (status, readiness) = relay.readiness().await.unwrap();
    assert_eq!(status, 200, "{readiness}");
    eventually(Duration::from_secs(5), "lag back to zero", || async {
        relay
            .readiness()
            .await
            .is_some_and(|(_, r)| r["lag_events"] == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_mid_stream_again_and_again_publishes_each_event_once() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    let writer = {
        let pool = db.pool.clone();
        tokio::spawn(async move { place_orders(&pool, "k", 600, 8).await })
    };
    for round in 0..4 {
        let mut relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        relay.kill().await;
    }
    writer.await.unwrap();
    let _relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    let messages = nats.messages(STREAM).await;
    eprintln!(
        "{} events, {} messages after 4 SIGKILLs",
        stored_event_ids(&db.pool).await.len(),
        messages.len()
    );
    assert_one_message_per_event_in_stream_order(&stored_event_ids(&db.pool).await, &messages);
}

/// A stream that already holds an event from the middle of the relay's
/// next batch (stored by a relay killed in a batch read differently, or
/// published by hand; the first of its own stream, so that the stream's
/// order is the relay's to keep): the relay publishes the rest and stores
/// that one no second time. A stream-wide "expected last message" chain refused
/// such a batch for ever (seen on the cluster: a kill mid-batch, then a
/// batch of another composition).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_already_holding_an_event_from_the_middle_of_a_batch_does_not_stop_the_relay() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "k", 30, 4).await;
    let events = stored_event_ids(&db.pool).await;
    let (tenant, kind, id, sequence, event_type): (String, String, String, i64, String) =
        sqlx::query_as(
            "SELECT tenant_id, aggregate_type, aggregate_id, sequence, event_type FROM events \
             WHERE aggregate_type = 'Order' AND sequence = 1 ORDER BY position OFFSET 10 LIMIT 1",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let message_id = format!("{tenant}/order/{id}/{sequence}");
    assert!(events.contains(&message_id));
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec!["orders.>".to_owned()],
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .unwrap();
    let body = serde_json::json!({
        "tenant": tenant, "aggregate_type": kind, "aggregate_id": id, "sequence": sequence,
    });
    jetstream
        .send_publish(
            format!("orders.{tenant}.order.{event_type}"),
            async_nats::jetstream::context::Publish::build()
                .payload(body.to_string().into())
                .message_id(&message_id),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    assert_one_message_per_event_in_stream_order(&events, &nats.messages(STREAM).await);
    // The one already there was a duplicate: every other event stored.
    let stored = events.len() - 1;
    eventually(Duration::from_secs(10), "caught up", || async {
        relay
            .readiness()
            .await
            .is_some_and(|(s, r)| s == 200 && r["lag_events"] == 0 && r["published"] == stored)
    })
    .await;
}

/// An event whose message exceeds the broker's max_payload (a server
/// configured for 4 KiB, an order of 60 lines): recorded in
/// relay_parked_events and published as a placeholder under its message
/// id; everything after it is published; one message per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_too_large_for_the_broker_is_parked_and_a_placeholder_stands_in_for_it() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start_with_max_payload(4096).await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    let skus: Vec<String> = (0..60).map(|i| format!("BULK-{i:02}")).collect();
    for sku in &skus {
        stocked_product(&db.pool, "acme", sku, 1_000, 100).await;
    }
    let lines: Vec<(&str, i64)> = skus.iter().map(|s| (s.as_str(), 1)).collect();
    let big = OrderCommands::new(db.pool.clone())
        .place_order(&as_customer("acme", "c"), checkout("c", "big", &lines))
        .await
        .unwrap();
    place_orders(&db.pool, "after", 20, 4).await;
    let relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    let messages = nats.messages(STREAM).await;
    assert_one_message_per_event_in_stream_order(&stored_event_ids(&db.pool).await, &messages);
    let placeholders: Vec<&Value> = messages
        .iter()
        .map(|(_, _, body)| body)
        .filter(|body| body.get("parked").is_some())
        .collect();
    assert_eq!(placeholders.len(), 1, "{placeholders:?}");
    let placeholder = placeholders[0];
    assert_eq!(placeholder["aggregate_id"], big.order.id.to_string());
    assert_eq!(placeholder["event_type"], "OrderPlaced");
    assert_eq!(placeholder["parked"]["max_payload"], 4096);
    assert!(placeholder["parked"]["size_bytes"].as_u64().unwrap() > 3_072);
    assert!(placeholder.get("payload").is_none());
    let parked: Vec<(String, i64)> =
        sqlx::query_as("SELECT aggregate_id, sequence FROM relay_parked_events")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(parked, [(big.order.id.to_string(), 1)]);
    let metrics = relay.metrics().await;
    assert!(metrics.contains("orders_relay_parked_total 1"), "{metrics}");
}

/// Three stores (three shops, each its own database, as on three
/// PostgreSQL servers) with a relay each, all publishing into one stream
/// while orders are placed in all three and one relay is killed and
/// started again: every event of every store once, each stream in order,
/// and no relay waits for another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_relays_of_three_stores_publish_into_one_stream_without_blocking_each_other() {
    let nats = NatsServer::start().await;
    let shops = ["north", "south", "east"];
    let mut stores = Vec::new();
    for shop in shops {
        let db = TestDatabase::new().await;
        stocked_product(&db.pool, shop, "A", 100, 100_000).await;
        stores.push(db);
    }
    let mut relays = Vec::new();
    for db in &stores {
        relays.push(RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await);
    }
    let writers: Vec<_> = stores
        .iter()
        .zip(shops)
        .map(|(db, shop)| {
            let pool = db.pool.clone();
            tokio::spawn(async move { place_orders_of(&pool, shop, "k", 240, 8).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    relays[1].kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relays[1] = RelayProcess::start(SERVICE, &stores[1].url(), &nats.url(), STREAM).await;
    for writer in writers {
        writer.await.unwrap();
    }
    let mut events = Vec::new();
    for db in &stores {
        events.extend(stored_event_ids(&db.pool).await);
    }
    eventually(Duration::from_secs(60), "every event published", || async {
        nats.messages(STREAM).await.len() >= events.len()
    })
    .await;
    let messages = nats.messages(STREAM).await;
    assert_one_message_per_event_in_stream_order(&events, &messages);
    for relay in &relays {
        caught_up(relay, Duration::from_secs(10), "each relay caught up").await;
    }
    eprintln!(
        "{} events of 3 stores, {} messages in one stream",
        events.len(),
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_of_a_transaction_that_commits_late_is_published_and_none_skipped() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 1_000).await;
    let relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    place_orders(&db.pool, "before", 10, 4).await;
    wait_until_published(&nats, &db, Duration::from_secs(20)).await;
    // A transaction takes a position now and commits later.
    let mut late = PgConnection::connect_with(&db.options()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut late).await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata, tenant_id) VALUES ('Product', 'late-stream', 1, 'ProductDefined', '1', \
         '{\"ProductDefined\":{}}', '{\"tenant_id\":\"acme\"}', 'acme')",
    )
    .execute(&mut late)
    .await
    .unwrap();
    place_orders(&db.pool, "after", 10, 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = nats.messages(STREAM).await;
    // The orders placed after the open transaction began: their message ids
    // name their streams (order ids), not their keys.
    let after: Vec<String> = sqlx::query_scalar(
        "SELECT 'acme/order/' || aggregate_id || '/1' FROM events \
         WHERE tenant_id = 'acme' AND idempotency_key LIKE 'after-%'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(after.len(), 10);
    let published: HashSet<&str> = held.iter().map(|(_, id, _)| id.as_str()).collect();
    assert!(
        published.iter().any(|id| id.starts_with("acme/order/")),
        "the orders placed before were published"
    );
    assert!(
        after.iter().all(|id| !published.contains(id.as_str()))
            && !published.contains("acme/product/late-stream/1"),
        "nothing committed after the open transaction's position is published before it"
    );
    let (_, readiness) = relay.readiness().await.unwrap();
    assert!(
        readiness["lag_events"].as_i64().unwrap() >= 10,
        "{readiness}"
    );
    sqlx::query("COMMIT").execute(&mut late).await.unwrap();
    wait_until_published(&nats, &db, Duration::from_secs(20)).await;
    let messages = nats.messages(STREAM).await;
    assert!(messages
        .iter()
        .any(|(_, id, _)| id == "acme/product/late-stream/1"));
    assert_one_message_per_event_in_stream_order(&stored_event_ids(&db.pool).await, &messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_relays_one_publishes_and_the_other_takes_over_when_it_dies() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 10_000).await;
    let mut first = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    eventually(
        Duration::from_secs(10),
        "the first relay is active",
        || async { first.readiness().await.is_some_and(|(s, _)| s == 200) },
    )
    .await;
    let second = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    eventually(
        Duration::from_secs(10),
        "the second relay stands by",
        || async {
            second
                .readiness()
                .await
                .is_some_and(|(s, r)| s == 503 && r["role"] == "standby")
        },
    )
    .await;
    place_orders(&db.pool, "one", 100, 8).await;
    wait_until_published(&nats, &db, Duration::from_secs(20)).await;
    assert_eq!(second.readiness().await.unwrap().1["published"], 0);
    first.kill().await;
    let killed = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "the second relay takes over",
        || async { second.readiness().await.is_some_and(|(s, _)| s == 200) },
    )
    .await;
    eprintln!("taken over {:?} after the kill", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(5));
    place_orders(&db.pool, "two", 100, 8).await;
    wait_until_published(&nats, &db, Duration::from_secs(20)).await;
    assert_one_message_per_event_in_stream_order(
        &stored_event_ids(&db.pool).await,
        &nats.messages(STREAM).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_stopped_under_load_and_restarted_loses_nothing() {
    let db = TestDatabase::new().await;
    let mut nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    // A de-duplication window (1 s) far shorter than the outage (seconds):
    // what of the interrupted batch reached the stream is found in the
    // relay's chain, not left to the window.
    let relay =
        RelayProcess::start_with(SERVICE, &db.url(), &nats.url(), STREAM, &SHORT_WINDOW).await;
    // Orders keep coming until NATS is back: the relay must have events to
    // publish while the broker is down, however fast this machine places
    // them (a fixed number of orders could all be published before NATS
    // stops).
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (pool, writing) = (db.pool.clone(), writing.clone());
        tokio::spawn(async move {
            let mut round = 0;
            while writing.load(Ordering::SeqCst) && round < 1_000 {
                place_orders(&pool, &format!("k{round}"), 8, 8).await;
                round += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.stop().await;
    eventually(
        Duration::from_secs(15),
        "the relay says it cannot publish",
        || async { relay.readiness().await.is_some_and(|(s, _)| s == 503) },
    )
    .await;
    // While it is stuck its metrics say so: not active, a broker failure
    // counted, and the lag and the stall growing rather than frozen.
    let (_, first) = relay.readiness().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, second) = relay.readiness().await.unwrap();
    assert_eq!(second["last_error"], "broker", "{second}");
    assert!(
        second["stalled_seconds"].as_f64().unwrap()
            >= first["stalled_seconds"].as_f64().unwrap() + 1.0,
        "{first} then {second}"
    );
    if first["lag_events"].as_i64().unwrap() > 0 {
        assert!(
            second["lag_seconds"].as_f64().unwrap() > first["lag_seconds"].as_f64().unwrap(),
            "{first} then {second}"
        );
    }
    let metrics = relay.metrics().await;
    assert!(metrics.contains("orders_relay_active 0"), "{metrics}");
    assert!(
        metrics.contains("orders_relay_failures_total{kind=\"broker\"}"),
        "{metrics}"
    );
    nats.resume().await;
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    wait_until_published(&nats, &db, Duration::from_secs(60)).await;
    assert_one_message_per_event_in_stream_order(
        &stored_event_ids(&db.pool).await,
        &nats.messages(STREAM).await,
    );
    caught_up(&relay, Duration::from_secs(10), "lag recovers").await;
}

/// The checkpoint's last writes are lost after JetStream acknowledged the
/// events (PostgreSQL down between the broker's acks and the checkpoint's
/// commit, or a store restored from an earlier backup), and the relay
/// starts again after the broker's de-duplication window (1 s here) has
/// passed. It reads its own chain in the stream after the checkpoint's
/// stream sequence and publishes only what the stream does not hold: here
/// the events whose messages were deleted, and the new ones. Before chains,
/// every event after the checkpoint was stored a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_behind_the_stream_republishes_nothing_the_stream_holds_after_the_window() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "before", 60, 6).await;
    let mut relay =
        RelayProcess::start_with(SERVICE, &db.url(), &nats.url(), STREAM, &SHORT_WINDOW).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    caught_up(&relay, Duration::from_secs(10), "the checkpoint saved").await;
    relay.kill().await;
    // Three orders whose one event's message is gone from the stream (an
    // order paid has two: those are kept, their order is the stream's).
    let single: Vec<String> = sqlx::query_scalar(
        "SELECT tenant_id || '/order/' || aggregate_id || '/1' FROM events \
         WHERE aggregate_type = 'Order' GROUP BY tenant_id, aggregate_id \
         HAVING count(*) = 1 ORDER BY min(position) LIMIT 3",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(single.len(), 3);
    for (sequence, id) in nats.message_sequences(STREAM).await {
        if single.contains(&id) {
            nats.delete_message(STREAM, sequence).await;
        }
    }
    let saved: (i64, i64) =
        sqlx::query_as("SELECT position, stream_sequence FROM relay_checkpoints")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(saved.0 > 0 && saved.1 > 0, "{saved:?}");
    sqlx::query(
        "UPDATE relay_checkpoints SET transaction_id = '0', position = 0, stream_sequence = 0",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Past the broker's de-duplication window.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    place_orders(&db.pool, "after", 12, 6).await;
    let relay =
        RelayProcess::start_with(SERVICE, &db.url(), &nats.url(), STREAM, &SHORT_WINDOW).await;
    every_event_published_once(&nats, STREAM, &db.pool, &relay).await;
    caught_up(&relay, Duration::from_secs(10), "caught up").await;
    said_the_stream_held_part_of_the_batch(&relay);
}

/// PostgreSQL goes away after JetStream acknowledged a batch and before
/// the checkpoint's write ran (a proxy drops the relay's connection as it
/// sends that statement, and refuses connections for 2 s), longer than the
/// broker's de-duplication window (1 s). The relay comes back on the old
/// checkpoint and finds the batch in its chain: one message per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_outage_after_the_brokers_acknowledgements_republishes_nothing() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "before", 40, 8).await;
    let mut url = reqwest::Url::parse(&db.url()).unwrap();
    let proxy = CommitCuttingProxy::start_losing_statement(
        db.address(),
        b"greatest(c.stream_sequence",
        Duration::from_secs(2),
    )
    .await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.address.port())).unwrap();
    // The proxy reads the protocol in the clear.
    url.query_pairs_mut().append_pair("sslmode", "disable");
    let relay =
        RelayProcess::start_with(SERVICE, url.as_str(), &nats.url(), STREAM, &SHORT_WINDOW).await;
    every_event_published_once(&nats, STREAM, &db.pool, &relay).await;
    caught_up(
        &relay,
        Duration::from_secs(30),
        "caught up after the outage",
    )
    .await;
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the checkpoint's write was lost once"
    );
    place_orders(&db.pool, "after", 10, 5).await;
    every_event_published_once(&nats, STREAM, &db.pool, &relay).await;
    said_the_stream_held_part_of_the_batch(&relay);
}

/// The leader's host is cut off in the middle of a stream of orders (its
/// network namespace's link goes down: no FIN, no RST, nothing). PostgreSQL
/// finds the dead session by itself (the relay's server-side keepalives)
/// and drops it with its lock; the standby takes over, reads the chain the
/// leader left in the stream, and publishes the rest. With a 1 s
/// de-duplication window and a takeover of many seconds: one message per
/// event, each stream in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_the_network_is_replaced_and_nothing_is_published_twice() {
    let namespace = NetworkNamespace::create();
    let cluster = OwnCluster::start_reachable_from(&namespace);
    let pool = cluster.migrated_database("shop").await;
    stocked_product(&pool, "acme", "A", 100, 1_000_000).await;
    let nats = NatsServer::start_on_every_address().await;
    place_orders(&pool, "before", 30, 6).await;
    let nats_from_inside = format!("nats://{}:{}", namespace.host_address, nats.port);
    let leader = RelayProcess::start_in(
        &namespace,
        SERVICE,
        &cluster.url_from(&namespace, "shop"),
        &nats_from_inside,
        STREAM,
        &SHORT_WINDOW,
    )
    .await;
    caught_up(&leader, Duration::from_secs(30), "the leader publishes").await;
    let standby = RelayProcess::start_with(
        SERVICE,
        &cluster.url("shop"),
        &nats.url(),
        STREAM,
        &SHORT_WINDOW,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the second relay stands by",
        || async { role(&standby).await == "standby" },
    )
    .await;
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (pool, writing) = (pool.clone(), writing.clone());
        tokio::spawn(async move {
            let mut round = 0;
            while writing.load(Ordering::SeqCst) && round < 2_000 {
                place_orders(&pool, &format!("k{round}"), 6, 6).await;
                round += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    namespace.cut();
    let cut = std::time::Instant::now();
    eventually(
        Duration::from_secs(90),
        "the standby takes over",
        || async { role(&standby).await == "active" },
    )
    .await;
    let took = cut.elapsed();
    writing.store(false, Ordering::SeqCst);
    writer.await.unwrap();
    let (events, messages) = every_event_published_once(&nats, STREAM, &pool, &standby).await;
    eprintln!("the standby took over {took:?} after the cut; {events} events, {messages} messages");
    // The old leader, for its part, gives its session up once PostgreSQL
    // has been silent for 35 s (it cannot publish without reading).
    eventually(
        Duration::from_secs(70).saturating_sub(cut.elapsed()),
        "the cut-off leader gives its session up",
        || async { leader.log().contains("PostgreSQL did not answer within") },
    )
    .await;
    eprintln!(
        "the cut-off leader gave up {:?} after the cut",
        cut.elapsed()
    );
    assert!(
        took < Duration::from_secs(60),
        "PostgreSQL drops a cut-off leader's session within about 25 s, the standby tries every second: took {took:?}"
    );
}

/// Another relay session marks the chain (as a new leader does when it
/// takes over) while this one still thinks it leads: the broker refuses
/// this one's next marker, so it stands down before it publishes its next
/// batch (a leader cut off from PostgreSQL but not from the broker would
/// be refused the same way). Alone, it takes the lead again, marks the
/// chain afresh and publishes the rest: every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_whose_chain_another_took_over_stands_down_before_publishing() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "before", 20, 5).await;
    let relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    every_event_published_once(&nats, STREAM, &db.pool, &relay).await;
    caught_up(&relay, Duration::from_secs(10), "caught up").await;
    let chain: String = sqlx::query_scalar("SELECT chain::text FROM relay_checkpoints")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let subject = format!("orders-relay-chains.{STREAM}.{chain}");
    let last = jetstream
        .get_stream(format!("{STREAM}_RELAY_CHAINS"))
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap()
        .sequence;
    jetstream
        .send_publish(
            subject,
            async_nats::jetstream::context::Publish::build()
                .payload("another relay's session".into())
                .expected_last_subject_sequence(last),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    place_orders(&db.pool, "after", 10, 5).await;
    eventually(Duration::from_secs(20), "the relay stands down", || async {
        relay.log().contains("another relay took over chain")
    })
    .await;
    every_event_published_once(&nats, STREAM, &db.pool, &relay).await;
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("orders_relay_failures_total{kind=\"fenced\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_durable_tail_prints_each_event_once_and_continues_where_it_stopped() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 1_000).await;
    let _relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    place_orders(&db.pool, "k", 6, 2).await;
    wait_until_published(&nats, &db, Duration::from_secs(20)).await;
    let tail = |limit| order_client::events::Tail {
        nats_url: nats.url(),
        stream: STREAM.to_owned(),
        durable: "orders-only".to_owned(),
        subject: "orders.acme.order.>".to_owned(),
        limit: Some(limit),
    };
    let mut first = Vec::new();
    assert_eq!(
        order_client::events::tail(&tail(5), &mut first)
            .await
            .unwrap(),
        5
    );
    let mut rest = Vec::new();
    // 6 OrderPlaced and 2 OrderPaid: 3 more after the first 5.
    assert_eq!(
        order_client::events::tail(&tail(3), &mut rest)
            .await
            .unwrap(),
        3
    );
    let lines: Vec<Value> = String::from_utf8(first)
        .unwrap()
        .lines()
        .chain(String::from_utf8(rest).unwrap().lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect::<Vec<_>>();
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 8, "each event once across the two runs");
    assert!(lines.iter().all(|l| l["subject"]
        .as_str()
        .unwrap()
        .starts_with("orders.acme.order.")
        && l["event"]["aggregate_type"] == "Order"));
}

/// A stream that de-duplicates for less than the relay's window: refused
/// at start with what to do, never used.
#[tokio::test]
async fn an_existing_stream_with_a_shorter_duplicate_window_is_refused_with_what_to_do() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec!["orders.>".to_owned()],
            duplicate_window: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    let exit = relay.exit_within(Duration::from_secs(20)).await;
    let log = relay.log();
    assert!(exit.is_some_and(|s| !s.success()), "{exit:?}\n{log}");
    assert!(
        log.contains("de-duplicates for 60s") && log.contains("--dupe-window 600s"),
        "{log}"
    );
}

/// The stream deleted after events were published: the relay refuses to
/// create it again (that would silently leave out everything published
/// before) and says how to publish everything again; asked to, it does:
/// one message per event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_stream_is_not_created_again_silently_and_is_filled_again_only_when_asked() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "k", 40, 8).await;
    let mut relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    relay.kill().await;
    nats.delete_stream(STREAM).await;
    let mut refused = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    let exit = refused.exit_within(Duration::from_secs(20)).await;
    let log = refused.log();
    assert!(exit.is_some_and(|s| !s.success()), "{exit:?}\n{log}");
    assert!(log.contains("ORDERS_RELAY_REPUBLISH_FROM_START"), "{log}");
    assert!(
        !nats.has_stream(STREAM).await,
        "the stream was created again"
    );
    let _asked = RelayProcess::start_with(
        SERVICE,
        &db.url(),
        &nats.url(),
        STREAM,
        &[("ORDERS_RELAY_REPUBLISH_FROM_START", "true")],
    )
    .await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    assert_one_message_per_event_in_stream_order(
        &stored_event_ids(&db.pool).await,
        &nats.messages(STREAM).await,
    );
}

/// The stream deleted under a running relay: at its next publish the relay
/// stops with a clear message and a failure exit (releasing its lock)
/// instead of retrying for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_deleted_under_a_running_relay_stops_it_with_a_clear_message() {
    let db = TestDatabase::new().await;
    let nats = NatsServer::start().await;
    stocked_product(&db.pool, "acme", "A", 100, 100_000).await;
    place_orders(&db.pool, "k", 10, 5).await;
    let mut relay = RelayProcess::start(SERVICE, &db.url(), &nats.url(), STREAM).await;
    wait_until_published(&nats, &db, Duration::from_secs(30)).await;
    nats.delete_stream(STREAM).await;
    place_orders(&db.pool, "after", 10, 5).await;
    let exit = relay.exit_within(Duration::from_secs(30)).await;
    let log = relay.log();
    assert!(exit.is_some_and(|s| !s.success()), "{exit:?}\n{log}");
    assert!(
        log.contains("was deleted while the relay published"),
        "{log}"
    );
    assert!(
        !nats.has_stream(STREAM).await,
        "the stream was created again"
    );
}

#[tokio::test]
async fn the_relay_refuses_bad_configuration_with_a_clear_message_and_a_failure_exit() {
    for (variable, value, says) in [
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("NATS_URL", "http://[::1", "NATS_URL"),
        (
            "ORDERS_RELAY_STREAM",
            "orders.events",
            "ORDERS_RELAY_STREAM",
        ),
        ("ORDERS_RELAY_BIND", "nowhere", "--bind"),
        ("ORDERS_RELAY_GROUPS", "1,two", "--groups"),
        ("ORDERS_RELAY_GROUPS", "-1", "--groups"),
    ] {
        let mut command = tokio::process::Command::new(SERVICE);
        command
            .arg("relay")
            .env("DATABASE_URL", "postgres://u@127.0.0.1:1/db")
            .env("NATS_URL", "nats://127.0.0.1:1")
            .env("ORDERS_RELAY_BIND", "127.0.0.1:0")
            .env(variable, value);
        let output = tokio::time::timeout(Duration::from_secs(10), command.output())
            .await
            .expect("bad configuration fails at once, not after retries")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value}: {stderr}");
        assert!(stderr.contains(says), "{variable}={value}: {stderr}");
    }
}
