//! On a real Citus cluster (a coordinator and two workers of the test's
//! own): the migrations apply, `distribute` shards every table of tenant
//! data by tenant and delegates the write path, the append-only guard
//! holds, a later migration applies to the distributed schema, and the
//! checkout keeps its guarantees for tenants on different workers:
//! duplicate storms, last units, abandon races, the read model equal to
//! the fold of the events; and a worker killed and restarted mid-storm
//! loses no acknowledged order and doubles none.
//!
//! Built only with `--features citus` (`scripts/test-citus`, which
//! `.ci/run` calls): it needs the citus extension in this machine's
//! PostgreSQL (`../shared/citus/build.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use order_service::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use store_orders_tests::app::{define_product, serve_over, token_for};
use store_orders_tests::citus::{citus_installed, CitusCluster};
use store_orders_tests::fixtures::{as_staff, now};
use store_orders_tests::nats::{
    eventually, every_event_published_once, stored_event_ids, NatsServer, RelayProcess,
};

const RELAY: &str = env!("CARGO_BIN_EXE_order-service-under-test");
const STREAM: &str = "ORDER_EVENTS";

/// A cluster, or None (and one line) where Citus is not installed.
async fn cluster() -> Option<CitusCluster> {
    order_client::install_tls_provider();
    if !citus_installed() {
        eprintln!("citus is not installed in this PostgreSQL: ../shared/citus/build.sh builds it");
        return None;
    }
    Some(CitusCluster::start().await)
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.post(url).bearer_auth(token);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Defines `sku` in `tenant` with `stock` units, over HTTP as staff.
async fn product(http: &reqwest::Client, base: &str, tenant: &str, sku: &str, stock: i64) {
    define_product(http, base, tenant, sku, 1_000, stock).await;
}

/// A tenant on each worker, each with 100,000 units of "A", and the
/// service over the coordinator.
async fn shop_on_each_worker(
    cluster: &CitusCluster,
) -> (Vec<String>, store_orders_tests::app::Replica) {
    let tenants = cluster.tenants_on_each_worker().await;
    let http = reqwest::Client::new();
    let app = serve_over(cluster.pool.clone()).await;
    for tenant in &tenants {
        product(&http, &app.base_url, tenant, "A", 100_000).await;
    }
    (tenants, app)
}

/// A rebuild's progress, on the test's output.
struct Told;

impl rebuild_projections::RebuildProgress for Told {
    fn stage(&self, stage: rebuild_projections::rebuild::Stage) {
        eprintln!("rebuild: {stage:?}");
    }
    fn applied(&self, events: u64) {
        eprintln!("rebuild: {events} events applied");
    }
    fn waiting(&self, why: &str) {
        eprintln!("rebuild waits: {why}");
    }
}

/// The names of the relay's checkpoints that have published something (a
/// relay that leads a node writes its checkpoint, with its chain, at the
/// start, before it publishes anything).
async fn relay_checkpoints(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT name FROM relay_checkpoints WHERE position > 0 ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// `count` shoppers (customers `{prefix}{n}`, keys `{prefix}{n}-{k}`),
/// spread over `tenants`, each checking out one unit of "A" after another (every checkout must succeed, the typed client
/// retrying) until `running` is cleared; each answers how many it placed.
fn shoppers(
    prefix: &str,
    base: &str,
    tenants: &[String],
    count: usize,
    running: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..count)
        .map(|w| {
            let tenant = tenants[w % tenants.len()].clone();
            let (base, running, prefix) = (base.to_owned(), running.clone(), prefix.to_owned());
            tokio::spawn(async move {
                let token = token_for(&tenant, &format!("{prefix}{w}"), Role::Customer);
                let client = order_client::OrdersClient::new(&base, &token).unwrap();
                let line = order_api::CheckoutLine {
                    sku: "A".into(),
                    quantity: 1,
                };
                let mut n = 0;
                while running.load(Ordering::SeqCst) {
                    n += 1;
                    client
                        .checkout_with_key(
                            &format!("{prefix}{w}-{n}"),
                            std::slice::from_ref(&line),
                            None,
                        )
                        .await
                        .unwrap();
                }
                n
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schema_distributes_by_tenant_and_the_append_only_guard_holds() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT logicalrelid::text, column_to_column_name(logicalrelid, partkey) \
         FROM pg_dist_partition ORDER BY 1",
    )
    .fetch_all(&cluster.pool)
    .await
    .unwrap();
    let expected: Vec<(String, String)> = [
        "events",
        "inventory",
        "relay_parked_events",
        "store_checkout_abandonments",
        "store_order_items",
        "store_orders",
        "store_unpaid_holds",
    ]
    .into_iter()
    .map(|t| (t.to_owned(), "tenant_id".to_owned()))
    .collect();
    assert_eq!(tables, expected);
    let colocations: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT colocationid) FROM pg_dist_partition")
            .fetch_one(&cluster.pool)
            .await
            .unwrap();
    assert_eq!(colocations, 1, "every table colocated with events");
    let delegated: Vec<String> = sqlx::query_scalar(
        "SELECT objid::regprocedure::text FROM pg_dist_object \
         WHERE classid = 'pg_proc'::regclass AND distribution_argument_index IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&cluster.pool)
    .await
    .unwrap();
    for function in [
        "abandon_checkout",
        "append_to_stream",
        "project_read_model",
        "stream_events_after",
    ] {
        assert!(
            delegated
                .iter()
                .any(|f| f.starts_with(&format!("{function}("))),
            "{function} is not delegated: {delegated:?}"
        );
    }
    // Idempotent.
    let mut conn = cluster.pool.acquire().await.unwrap();
    let again = order_store::distribute(&mut conn).await.unwrap();
    assert!(again.distributed.is_empty(), "{again:?}");
    assert_eq!(again.already.len(), 7);
    // The append-only guard, for the owner too, on the cluster.
    let http = reqwest::Client::new();
    let app = serve_over(cluster.pool.clone()).await;
    product(&http, &app.base_url, "acme", "A", 10).await;
    for statement in ["UPDATE events SET event_type = 'X'", "DELETE FROM events"] {
        let refused = sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{statement}: {refused}"
        );
    }
    assert!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
            >= 2
    );
    // A later migration applies to the distributed schema: a table of
    // tenant data (distributed by a second run), a function changed, data
    // updated.
    sqlx::raw_sql(
        "CREATE TABLE gift_cards (tenant_id text NOT NULL, code text NOT NULL, \
             balance bigint NOT NULL, PRIMARY KEY (tenant_id, code)); \
         CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'events are append-only (still): % refused', TG_OP \
             USING ERRCODE = 'restrict_violation'; END; $$; \
         UPDATE inventory SET name = name || ' (renamed)' WHERE tenant_id = 'acme';",
    )
    .execute(&mut *conn)
    .await
    .expect("a migration applies to the distributed schema");
    let later = order_store::distribute(&mut conn).await.unwrap();
    assert_eq!(later.distributed, vec!["gift_cards".to_owned()]);
    let refused = sqlx::query("DELETE FROM events")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("(still)"), "{refused}");
    let renamed: String =
        sqlx::query_scalar("SELECT name FROM inventory WHERE tenant_id = 'acme' AND sku = 'A'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(renamed, "Product A (renamed)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_last_units_and_abandons_keep_their_guarantees_on_both_workers() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let tenants = cluster.tenants_on_each_worker().await;
    let http = reqwest::Client::new();
    // Three replicas of the service over the coordinator.
    let replicas = [
        serve_over(cluster.pool.clone()).await,
        serve_over(cluster.pool.clone()).await,
        serve_over(cluster.pool.clone()).await,
    ];
    for tenant in &tenants {
        product(&http, &replicas[0].base_url, tenant, "A", 1_000).await;
        product(&http, &replicas[0].base_url, tenant, "LAST", 5).await;
        let token = token_for(tenant, "cust-1", Role::Customer);
        // 48 duplicates of one checkout, spread over the replicas.
        let key = format!("storm-{tenant}");
        let body = json!({"lines": [{"sku": "A", "quantity": 2}]});
        let answers = join_all((0..48).map(|i| {
            post(
                &http,
                format!("{}/v1/checkout", replicas[i % 3].base_url),
                &token,
                Some(&key),
                Some(body.clone()),
            )
        }))
        .await;
        let created = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        let replayed = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!((created, replayed), (1, 47), "{tenant}: {answers:?}");
        let ids: std::collections::HashSet<&Value> =
            answers.iter().map(|(_, b)| &b["id"]).collect();
        assert_eq!(ids.len(), 1, "one order");
        // 20 customers for the last 5 units.
        let answers = join_all((0..20).map(|i| {
            let token = token_for(tenant, &format!("buyer-{i}"), Role::Customer);
            let base = replicas[i % 3].base_url.clone();
            let http = http.clone();
            async move {
                post(
                    &http,
                    format!("{base}/v1/checkout"),
                    &token,
                    Some(&format!("last-{i}")),
                    Some(json!({"lines": [{"sku": "LAST", "quantity": 1}]})),
                )
                .await
            }
        }))
        .await;
        let sold = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count();
        let refused = answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CONFLICT)
            .count();
        assert_eq!((sold, refused), (5, 15), "{tenant}: {answers:?}");
        // Abandons racing checkouts with one key.
        let mut outcomes = (0, 0);
        for trial in 0..12 {
            let key = format!("race-{trial}");
            let buyer = token_for(tenant, &format!("racer-{trial}"), Role::Customer);
            let checkout_body = json!({"lines": [{"sku": "A", "quantity": 1}]});
            let (abandon, first, second) = tokio::join!(
                post(
                    &http,
                    format!(
                        "{}/v1/checkouts/{key}/abandon",
                        replicas[trial % 3].base_url
                    ),
                    &buyer,
                    None,
                    None
                ),
                post(
                    &http,
                    format!("{}/v1/checkout", replicas[(trial + 1) % 3].base_url),
                    &buyer,
                    Some(&key),
                    Some(checkout_body.clone())
                ),
                post(
                    &http,
                    format!("{}/v1/checkout", replicas[(trial + 2) % 3].base_url),
                    &buyer,
                    Some(&key),
                    Some(checkout_body.clone())
                ),
            );
            assert_eq!(abandon.0, StatusCode::OK, "{abandon:?}");
            match abandon.1["state"].as_str() {
                Some("abandoned") => {
                    outcomes.0 += 1;
                    assert_eq!(first.0, StatusCode::CONFLICT, "{first:?}");
                    assert_eq!(second.0, StatusCode::CONFLICT, "{second:?}");
                }
                Some("placed") => {
                    outcomes.1 += 1;
                    let mut statuses = [first.0, second.0];
                    statuses.sort();
                    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED]);
                    assert_eq!(first.1["id"], abandon.1["order"]["id"]);
                }
                other => panic!("{other:?}"),
            }
        }
        eprintln!("{tenant}: abandon races {outcomes:?} (abandoned, placed)");
    }
    // Each tenant's rows are on its own worker, and the store agrees with
    // itself: stock taken once per order line.
    for tenant in &tenants {
        let worker = cluster.worker_of(tenant).await;
        let (placed, on_hand_a, on_hand_last): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM store_orders WHERE tenant_id = $1), \
                    (SELECT on_hand FROM inventory WHERE tenant_id = $1 AND sku = 'A'), \
                    (SELECT on_hand FROM inventory WHERE tenant_id = $1 AND sku = 'LAST')",
        )
        .bind(tenant)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
        let sold_a: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(quantity), 0)::bigint FROM store_order_items \
             WHERE tenant_id = $1 AND sku = 'A'",
        )
        .bind(tenant)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
        assert_eq!(on_hand_last, 0, "{tenant}");
        assert_eq!(on_hand_a, 1_000 - sold_a, "{tenant}");
        assert!(placed >= 6, "{tenant} on worker {worker}: {placed} orders");
    }
    assert_ne!(
        cluster.worker_of(&tenants[0]).await,
        cluster.worker_of(&tenants[1]).await
    );
    // The read model equals the fold of the events (a rebuild's --verify),
    // and checking it changes nothing.
    let live = || async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM store_orders), (SELECT count(*) FROM store_order_items), \
                    (SELECT sum(on_hand)::bigint FROM inventory)",
        )
        .fetch_one(&cluster.pool)
        .await
        .unwrap()
    };
    let before = live().await;
    let verified = rebuild_projections::verify(&cluster.pool, "verify_on_citus").await;
    match verified {
        Ok(report) => assert!(report.is_clean(), "{report:#?}"),
        Err(e) => panic!("verify on the cluster: {e}"),
    }
    assert_eq!(live().await, before, "verify writes nothing live");
}

/// A worker killed (as in a crash) and restarted while checkouts of its
/// tenant and of the other worker's keep arriving, each retried with its
/// key by the typed client: every acknowledged order exists exactly once,
/// every other key at most once, and stock agrees with the orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_restarted_mid_storm_loses_no_acknowledged_order_and_doubles_none() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let victim_port = cluster.worker_of(&tenants[0]).await;
    let victim = cluster
        .workers
        .iter()
        .find(|w| w.port == victim_port)
        .unwrap();
    let policy = order_client::RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        max_total: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
    };
    let running = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for w in 0..8 {
        let tenant = tenants[w % tenants.len()].clone();
        let (base, running, policy) = (app.base_url.clone(), running.clone(), policy.clone());
        writers.push(tokio::spawn(async move {
            let token = token_for(&tenant, &format!("writer-{w}"), Role::Customer);
            let client = order_client::OrdersClient::with_policy(&base, &token, policy).unwrap();
            let line = order_api::CheckoutLine {
                sku: "A".into(),
                quantity: 1,
            };
            let mut keys = Vec::new();
            let mut n = 0;
            while running.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("w{w}-{n}");
                let acknowledged = client
                    .checkout_with_key(&key, std::slice::from_ref(&line), None)
                    .await
                    .is_ok();
                keys.push((tenant.clone(), key, acknowledged));
            }
            keys
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    victim.stop_immediately();
    let down = sqlx::query("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(&tenants[0])
        .execute(&cluster.pool)
        .await;
    assert!(
        down.is_err(),
        "the worker is down: its tenant cannot be read"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    victim.start_again();
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for writer in writers {
        attempts.extend(writer.await.unwrap());
    }
    let acknowledged = attempts.iter().filter(|(_, _, ok)| *ok).count();
    assert!(acknowledged > 20, "{acknowledged} acknowledged orders");
    for (tenant, key, ok) in &attempts {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND aggregate_type = 'Order' \
             AND idempotency_key = $2",
        )
        .bind(tenant)
        .bind(key)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
        if *ok {
            assert_eq!(stored, 1, "{tenant}/{key} was acknowledged");
        } else {
            assert!(stored <= 1, "{tenant}/{key}: {stored} orders");
        }
    }
    for tenant in &tenants {
        let (orders, on_hand): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM store_orders WHERE tenant_id = $1), \
                    (SELECT on_hand FROM inventory WHERE tenant_id = $1 AND sku = 'A')",
        )
        .bind(tenant)
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
        assert_eq!(
            on_hand,
            100_000 - orders,
            "{tenant}: stock taken once per order"
        );
    }
    eprintln!(
        "{} checkouts, {acknowledged} acknowledged, worker on {victim_port} restarted mid-storm",
        attempts.len()
    );
}

/// Checkouts for a tenant on each worker, the relay SIGKILLed and started
/// again three times, then, with no relay running, the first tenant's
/// shards moved to the other worker under the checkouts (online, Citus'
/// default transfer) and 100 of its unpublished orders paid there (streams
/// continued on another worker); a relay reading 20 events at a time
/// publishes every event once, each stream in order. Events keep their birth node's
/// position range and transaction id when their shard moves, and the relay
/// reads each birth node's commit order wherever its rows now live
/// (`order_store::commit_order`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_publishes_every_event_once_through_kills_and_a_shard_move() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let nats = NatsServer::start().await;
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("w", &app.base_url, &tenants, 6, &running);
    let (from, to) = {
        let from = cluster.worker_of(&tenants[0]).await;
        let to = cluster
            .workers
            .iter()
            .map(|w| w.port)
            .find(|p| *p != from)
            .unwrap();
        (from, to)
    };
    for round in 0..3u64 {
        let mut relay = RelayProcess::start(RELAY, &cluster.url(), &nats.url(), STREAM).await;
        tokio::time::sleep(Duration::from_millis(700 + 300 * round)).await;
        relay.kill().await;
    }
    let mut relay = RelayProcess::start(RELAY, &cluster.url(), &nats.url(), STREAM).await;
    running.store(false, Ordering::SeqCst);
    let mut placed = 0;
    for writer in writers {
        placed += writer.await.unwrap();
    }
    eventually(Duration::from_secs(30), "caught up", || async {
        relay
            .readiness()
            .await
            .is_some_and(|(status, r)| status == 200 && r["lag_events"] == 0)
    })
    .await;
    relay.kill().await;
    // No relay runs from here. Shoppers of the first tenant only: their
    // orders are born on its worker and stay unpublished.
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("late", &app.base_url, &tenants[..1], 3, &running);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let unpublished: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT aggregate_id::uuid FROM events WHERE tenant_id = $1 AND aggregate_type = 'Order' \
         ORDER BY position DESC LIMIT 100",
    )
    .bind(&tenants[0])
    .fetch_all(&cluster.pool)
    .await
    .unwrap();
    cluster.move_tenant(&tenants[0], from, to).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::SeqCst);
    for writer in writers {
        placed += writer.await.unwrap();
    }
    assert_eq!(cluster.worker_of(&tenants[0]).await, to, "the shard moved");
    // Paid now: each OrderPaid is born on the second worker, its stream's
    // OrderPlaced on the first, still unpublished.
    let commands = order_store::OrderCommands::new(cluster.pool.clone());
    for id in &unpublished {
        commands
            .mark_paid(
                &as_staff(&tenants[0]),
                order_domain::OrderId::from(*id),
                now(),
            )
            .await
            .unwrap();
    }
    let continued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events AS e JOIN events AS p \
           ON p.tenant_id = e.tenant_id AND p.aggregate_id = e.aggregate_id \
          AND p.sequence = e.sequence - 1 \
         WHERE e.tenant_id = $1 AND e.position >> 48 <> p.position >> 48",
    )
    .bind(&tenants[0])
    .fetch_one(&cluster.pool)
    .await
    .unwrap();
    assert_eq!(continued, 100, "streams continued on another worker");
    // Small batches: the first worker's backlog is read over many polls
    // while the second's payments wait for their orders.
    let relay = RelayProcess::start_with(
        RELAY,
        &cluster.url(),
        &nats.url(),
        STREAM,
        &[("ORDERS_RELAY_BATCH", "20")],
    )
    .await;
    let (events, messages) = every_event_published_once(&nats, STREAM, &cluster.pool, &relay).await;
    eventually(
        Duration::from_secs(10),
        "/readyz: every node caught up",
        || async {
            relay.readiness().await.is_some_and(|(status, r)| {
                status == 200
                    && r["lag_events"] == 0
                    && r["nodes"].as_array().is_some_and(|nodes| nodes.len() == 3)
            })
        },
    )
    .await;
    let checkpoints = relay_checkpoints(&cluster.pool).await;
    assert_eq!(
        checkpoints,
        [format!("{STREAM}@group1"), format!("{STREAM}@group2")],
        "one checkpoint per worker (the coordinator's events: none yet)"
    );
    // The rebuild's reader follows the same birth nodes: streams continued
    // on another worker fold in order.
    let drift = rebuild_projections::verify(&cluster.pool, "verify_after_move")
        .await
        .unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    eprintln!(
        "{placed} checkouts, {} events, {} messages, 3 relay kills and a shard move",
        events, messages
    );
}

/// The statements docs/SCALE-OUT.md says `distribute` runs (its `sql`
/// block that begins with the trigger setting): comments left out, a
/// statement's lines joined.
fn documented_distribution() -> Vec<String> {
    let doc = include_str!("../docs/SCALE-OUT.md");
    let start = doc
        .find("```sql\nSET citus.enable_unsafe_triggers")
        .expect("the distribute block in docs/SCALE-OUT.md");
    let block = &doc[start + "```sql\n".len()..];
    let block = &block[..block.find("```").expect("the block's end")];
    let mut statements = Vec::new();
    let mut statement = String::new();
    for line in block.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        if !statement.is_empty() {
            statement.push(' ');
        }
        statement.push_str(line);
        if line.ends_with(';') {
            statements.push(std::mem::take(&mut statement));
        }
    }
    statements
}

/// A live single-node store moved onto the cluster: the coordinator holds
/// the store undistributed, checkouts and the relay run, then `distribute`
/// runs under the traffic. The relay goes on from its checkpoint (the
/// coordinator's events keep its commit order: they were born there) and
/// follows each worker's from then on: every event reaches JetStream once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_single_node_store_moves_onto_the_cluster_and_the_relay_goes_on() {
    order_client::install_tls_provider();
    if !citus_installed() {
        return;
    }
    let cluster = CitusCluster::start_with(false).await;
    let nats = NatsServer::start().await;
    let tenants = ["shop-a", "shop-b", "shop-c", "shop-d"].map(String::from);
    let http = reqwest::Client::new();
    let app = serve_over(cluster.pool.clone()).await;
    for tenant in &tenants {
        product(&http, &app.base_url, tenant, "A", 100_000).await;
    }
    let relay = RelayProcess::start(RELAY, &cluster.url(), &nats.url(), STREAM).await;
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("w", &app.base_url, &tenants, 4, &running);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
    let mut conn = cluster.pool.acquire().await.unwrap();
    let distribution = order_store::distribute(&mut conn).await.unwrap();
    assert_eq!(distribution.distributed.len(), 7, "{distribution:?}");
    assert_eq!(
        documented_distribution(),
        distribution.statements,
        "docs/SCALE-OUT.md prints exactly what distribute runs"
    );
    drop(conn);
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.store(false, Ordering::SeqCst);
    let mut placed = 0;
    for writer in writers {
        placed += writer.await.unwrap();
    }
    let born_on_workers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE position >= $1")
            .bind(order_store::commit_order::POSITIONS_PER_NODE)
            .fetch_one(&cluster.pool)
            .await
            .unwrap();
    assert!(
        born_on_workers > 0,
        "checkouts after distribute ran on the workers"
    );
    let (events, messages) = every_event_published_once(&nats, STREAM, &cluster.pool, &relay).await;
    eventually(Duration::from_secs(10), "/readyz: caught up", || async {
        relay
            .readiness()
            .await
            .is_some_and(|(status, r)| status == 200 && r["lag_events"] == 0)
    })
    .await;
    let checkpoints = relay_checkpoints(&cluster.pool).await;
    assert_eq!(
        checkpoints[0], STREAM,
        "the single node's checkpoint goes on"
    );
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");
    let drift = rebuild_projections::verify(&cluster.pool, "verify_after_distribute")
        .await
        .unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    eprintln!(
        "{placed} checkouts; {before} events before distribute, {} after ({born_on_workers} born on the workers); {} messages",
        events, messages
    );
}

/// The rebuild's swap on the cluster, under checkouts for a tenant on each
/// worker: no checkout fails, the swapped-in read model is distributed and
/// colocated like the one it replaces, equals the fold of the events
/// (`--verify`), and checkouts after it still run on the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rebuild_swaps_the_read_model_in_under_live_checkouts() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("r", &app.base_url, &tenants, 4, &running);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let summary = rebuild_projections::rebuild(
        &cluster.pool,
        &rebuild_projections::RebuildOptions::default(),
        &Told,
    )
    .await
    .unwrap_or_else(|e| panic!("the rebuild on the cluster: {e}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::SeqCst);
    let mut placed = 0;
    for writer in writers {
        placed += writer.await.unwrap();
    }
    let tables: Vec<(String, i64)> = sqlx::query_as(
        "SELECT logicalrelid::text, colocationid::bigint FROM pg_dist_partition ORDER BY 1",
    )
    .fetch_all(&cluster.pool)
    .await
    .unwrap();
    assert_eq!(tables.len(), 7, "{tables:?}");
    assert!(
        tables.iter().all(|(_, c)| *c == tables[0].1),
        "colocated: {tables:?}"
    );
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM store_orders")
        .fetch_one(&cluster.pool)
        .await
        .unwrap();
    assert_eq!(
        orders as usize, placed,
        "every order in the read model, once"
    );
    let drift = rebuild_projections::verify(&cluster.pool, "verify_after_swap")
        .await
        .unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    for tenant in &tenants {
        let token = token_for(tenant, "late", Role::Customer);
        let client = order_client::OrdersClient::new(&app.base_url, &token).unwrap();
        let line = order_api::CheckoutLine {
            sku: "A".into(),
            quantity: 1,
        };
        client
            .checkout_with_key("after-the-swap", std::slice::from_ref(&line), None)
            .await
            .unwrap();
    }
    // In place (writers locked out throughout), on the cluster too.
    let in_place = rebuild_projections::RebuildOptions {
        mode: rebuild_projections::RebuildMode::InPlace,
        ..rebuild_projections::RebuildOptions::default()
    };
    rebuild_projections::rebuild(&cluster.pool, &in_place, &Told)
        .await
        .unwrap_or_else(|e| panic!("the rebuild in place on the cluster: {e}"));
    let drift = rebuild_projections::verify(&cluster.pool, "verify_after_in_place")
        .await
        .unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    eprintln!(
        "{placed} checkouts during a swap of {} events",
        summary.events
    );
}

/// `/readyz` on the cluster reports each node's commit-order hold-back: a
/// transaction left open on one worker holds back the events born there
/// after it began, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_reports_the_hold_back_of_each_node() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let held_port = cluster.worker_of(&tenants[0]).await;
    let held = cluster
        .workers
        .iter()
        .find(|w| w.port == held_port)
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions =
        format!("{}?sslmode=disable", held.url("postgres"))
            .parse()
            .unwrap();
    let mut open = store_orders_tests::database::open_transaction(&options).await;
    for tenant in &tenants {
        let token = token_for(tenant, "reader", Role::Customer);
        let client = order_client::OrdersClient::new(&app.base_url, &token).unwrap();
        let line = order_api::CheckoutLine {
            sku: "A".into(),
            quantity: 1,
        };
        for n in 0..5 {
            client
                .checkout_with_key(&format!("held-{n}"), std::slice::from_ref(&line), None)
                .await
                .unwrap();
        }
    }
    // A probe answered before the checkouts may be reused for a second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let readiness: Value = reqwest::get(format!("{}/readyz", app.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let nodes = readiness["commit_order"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{readiness}");
    let held_back = |node: &str| {
        nodes
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| n["held_back_events"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("{node} in {readiness}"))
    };
    assert_eq!(
        held_back(&format!("127.0.0.1:{held_port}")),
        5,
        "{readiness}"
    );
    let other = cluster.worker_of(&tenants[1]).await;
    assert_eq!(held_back(&format!("127.0.0.1:{other}")), 0, "{readiness}");
    assert_eq!(readiness["commit_order"]["held_back_events"], 5);
    sqlx::query("ROLLBACK").execute(&mut open).await.unwrap();
    // The probe is reused for up to a second.
    eventually(
        Duration::from_secs(5),
        "nothing held back after the rollback",
        || async {
            let readiness: Value = reqwest::get(format!("{}/readyz", app.base_url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            readiness["commit_order"]["held_back_events"] == 0
        },
    )
    .await;
}

/// Citus group id of the worker on `port`.
async fn group_of_worker(cluster: &CitusCluster, port: u16) -> i32 {
    sqlx::query_scalar("SELECT groupid FROM pg_dist_node WHERE nodeport = $1")
        .bind(i32::from(port))
        .fetch_one(&cluster.pool)
        .await
        .unwrap()
}

/// Message ids (as the relay names them) of the events born on `group`.
async fn born_on(cluster: &CitusCluster, group: i32) -> Vec<String> {
    let (first, past) = order_store::commit_order::positions_of_group(group);
    let all = stored_event_ids(&cluster.pool).await;
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&cluster.pool)
        .await
        .unwrap();
    all.into_iter()
        .zip(positions)
        .filter(|(_, position)| (first..past).contains(position))
        .map(|(id, _)| id)
        .collect()
}

/// One relay per node (`ORDERS_RELAY_GROUPS`), all into one stream: each
/// publishes the events born on its node; with one of them stopped, the
/// others go on publishing theirs; streams continued on another node
/// (a shard move while a node's relay is down) wait for the stopped
/// relay's events and none is published before its predecessor; once it
/// is back, every event once. A relay for every node started beside them
/// stands by: each node has one leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_per_node_publishes_into_one_stream_and_none_waits_for_a_stopped_one() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let nats = NatsServer::start().await;
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let from = cluster.worker_of(&tenants[0]).await;
    let to = cluster.worker_of(&tenants[1]).await;
    let (group_from, group_to) = (
        group_of_worker(&cluster, from).await,
        group_of_worker(&cluster, to).await,
    );
    let start = |group: i32| {
        let (url, nats_url) = (cluster.url(), nats.url());
        async move {
            RelayProcess::start_with(
                RELAY,
                &url,
                &nats_url,
                STREAM,
                &[("ORDERS_RELAY_GROUPS", &group.to_string())],
            )
            .await
        }
    };
    let coordinator = start(0).await;
    let mut relay_from = start(group_from).await;
    let relay_to = start(group_to).await;
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("w", &app.base_url, &tenants, 4, &running);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay_from.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.store(false, Ordering::SeqCst);
    let mut placed = 0;
    for writer in writers {
        placed += writer.await.unwrap();
    }
    // The first worker's relay is down: the second's events all go out.
    let born_on_to = born_on(&cluster, group_to).await;
    eventually(
        Duration::from_secs(30),
        "every event born on the second worker published, the first's relay down",
        || async {
            let published = nats.message_ids(STREAM).await;
            born_on_to.iter().all(|id| published.contains(id))
        },
    )
    .await;
    let published = nats.message_ids(STREAM).await;
    let unpublished_from: Vec<String> = born_on(&cluster, group_from)
        .await
        .into_iter()
        .filter(|id| !published.contains(id))
        .collect();
    assert!(
        !unpublished_from.is_empty(),
        "orders born on the first worker after its relay stopped wait for it"
    );
    // Those orders' streams continue on the second worker: the tenant's
    // shards move there and up to 50 of them are paid.
    cluster.move_tenant(&tenants[0], from, to).await;
    let commands = order_store::OrderCommands::new(cluster.pool.clone());
    let mut paid = Vec::new();
    for id in unpublished_from
        .iter()
        .filter(|id| id.contains("/order/") && id.ends_with("/1"))
        .take(50)
    {
        let order: uuid::Uuid = id.split('/').nth(2).unwrap().parse().unwrap();
        commands
            .mark_paid(
                &as_staff(&tenants[0]),
                order_domain::OrderId::from(order),
                now(),
            )
            .await
            .unwrap();
        paid.push(format!("{}/2", id.trim_end_matches("/1")));
    }
    assert!(!paid.is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let published = nats.message_ids(STREAM).await;
    assert!(
        paid.iter().all(|id| !published.contains(id)),
        "a payment born on the second worker waits for its order, born on the first"
    );
    let relay_from = start(group_from).await;
    let (events, messages) =
        every_event_published_once(&nats, STREAM, &cluster.pool, &relay_from).await;
    // A relay for every node, started now, finds each led: it stands by
    // (it would have taken the first worker's while its relay was down).
    let every_node = RelayProcess::start(RELAY, &cluster.url(), &nats.url(), STREAM).await;
    eventually(
        Duration::from_secs(15),
        "the relay for every node stands by",
        || async {
            every_node
                .readiness()
                .await
                .is_some_and(|(status, r)| status == 503 && r["role"] == "standby")
        },
    )
    .await;
    for (relay, node) in [
        (&coordinator, 0),
        (&relay_from, group_from),
        (&relay_to, group_to),
    ] {
        let checkpoint = if node == 0 {
            STREAM.to_owned()
        } else {
            format!("{STREAM}@group{node}")
        };
        eventually(
            Duration::from_secs(10),
            "each relay leads its node, caught up",
            || async {
                relay.readiness().await.is_some_and(|(status, r)| {
                    status == 200
                        && r["lag_events"] == 0
                        && r["nodes"].as_array().is_some_and(|nodes| {
                            nodes.len() == 1 && nodes[0]["checkpoint"] == checkpoint.as_str()
                        })
                })
            },
        )
        .await;
    }
    eprintln!(
        "{placed} checkouts, {events} events, {messages} messages, {} paid after the move, by three relays",
        paid.len()
    );
}

/// A worker added to the cluster while the relay runs, and a tenant's
/// shards moved onto it: the relay finds the new node without a restart
/// and publishes the events born there (and before, elsewhere) once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_added_under_a_running_relay_has_its_events_published() {
    let Some(mut cluster) = cluster().await else {
        return;
    };
    let nats = NatsServer::start().await;
    let (tenants, app) = shop_on_each_worker(&cluster).await;
    let relay = RelayProcess::start(RELAY, &cluster.url(), &nats.url(), STREAM).await;
    let running = Arc::new(AtomicBool::new(true));
    let writers = shoppers("before", &app.base_url, &tenants, 2, &running);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = cluster.worker_of(&tenants[0]).await;
    let added = cluster.add_worker().await;
    cluster.move_tenant(&tenants[0], from, added).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::SeqCst);
    let mut placed = 0;
    for writer in writers {
        placed += writer.await.unwrap();
    }
    assert_eq!(cluster.worker_of(&tenants[0]).await, added);
    let born_there: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events AS e JOIN pg_dist_node AS n \
           ON n.groupid = (e.position >> 48)::int WHERE n.nodeport = $1",
    )
    .bind(i32::from(added))
    .fetch_one(&cluster.pool)
    .await
    .unwrap();
    assert!(born_there > 0, "checkouts ran on the added worker");
    let (events, messages) = every_event_published_once(&nats, STREAM, &cluster.pool, &relay).await;
    eventually(
        Duration::from_secs(10),
        "/readyz: four nodes, caught up",
        || async {
            relay.readiness().await.is_some_and(|(status, r)| {
                status == 200
                    && r["lag_events"] == 0
                    && r["nodes"].as_array().is_some_and(|nodes| nodes.len() == 4)
            })
        },
    )
    .await;
    eprintln!(
        "{placed} checkouts, {born_there} events born on the added worker, {events} events, {messages} messages"
    );
}
