//! What a system gets wrong: the same two scenarios against each HTTP
//! system, and what its own store says afterwards.
//!
//! - **duplicate storm**: 64 identical checkouts with one key at once. The
//!   contract: one 201, 63 replays (200), one order, the stock moved once.
//! - **last units**: 5 units left, 40 customers each buying one at once.
//!   The contract: five 201s, 35 refusals (409 out of stock), five orders,
//!   nothing left, never less.

use futures::future::join_all;

use crate::{body, post_checkout, Target};

/// The storm's product: plenty of stock, so only the duplicates matter.
const STORM_SKU: &str = "STORM-1";
const STORM_STOCK: i64 = 1_000;
/// The last units' product.
const LAST_SKU: &str = "LAST-5";
const LAST_STOCK: i64 = 5;
const BUYERS: usize = 40;
const DUPLICATES: usize = 64;

/// The answers to a burst of requests, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answers {
    pub created: usize,
    pub replayed: usize,
    /// 4xx: a refusal (out of stock, conflict...).
    pub refused: usize,
    /// 5xx, or no answer.
    pub failed: usize,
}

impl Answers {
    fn of(statuses: &[Option<u16>]) -> Self {
        let mut answers = Self::default();
        for status in statuses {
            match status {
                Some(201) => answers.created += 1,
                Some(200) => answers.replayed += 1,
                Some(s) if (400..500).contains(s) => answers.refused += 1,
                _ => answers.failed += 1,
            }
        }
        answers
    }
}

/// The two scenarios' answers, and what the store holds after each.
#[derive(Debug, Clone, Copy, Default)]
pub struct Findings {
    pub storm: Answers,
    pub storm_orders: i64,
    pub storm_units_moved: i64,
    pub last: Answers,
    pub last_orders: i64,
    pub last_on_hand: i64,
}

/// Where a system keeps its orders and stock, read directly.
pub trait Store {
    async fn add_product(&self, sku: &str, on_hand: i64) -> anyhow::Result<()>;
    async fn on_hand(&self, sku: &str) -> anyhow::Result<i64>;
    /// Orders stored with the Idempotency-Key `key`.
    async fn orders_of_key(&self, key: &str) -> anyhow::Result<i64>;
    /// Orders stored with a line of `sku`.
    async fn orders_with(&self, sku: &str) -> anyhow::Result<i64>;
}

/// The service's store: events, `store_orders`, `inventory`.
pub struct ServiceStore<'a>(pub &'a sqlx::PgPool);

impl Store for ServiceStore<'_> {
    async fn add_product(&self, sku: &str, on_hand: i64) -> anyhow::Result<()> {
        crate::define_product(self.0, sku, 1_000, on_hand).await
    }

    async fn on_hand(&self, sku: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT on_hand FROM inventory WHERE tenant_id = $1 AND sku = $2")
                .bind(crate::TENANT)
                .bind(sku)
                .fetch_one(self.0)
                .await?,
        )
    }

    async fn orders_of_key(&self, key: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND aggregate_type = 'Order' \
             AND event_type = 'OrderPlaced' AND idempotency_key = $2",
        )
        .bind(crate::TENANT)
        .bind(key)
        .fetch_one(self.0)
        .await?)
    }

    async fn orders_with(&self, sku: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(DISTINCT order_id) FROM store_order_items WHERE tenant_id = $1 AND sku = $2",
        )
        .bind(crate::TENANT)
        .bind(sku)
        .fetch_one(self.0)
        .await?)
    }
}

/// The stock stack's store: postgres-es' events, its views.
pub struct StockStackStore<'a>(pub &'a sqlx::PgPool);

impl Store for StockStackStore<'_> {
    async fn add_product(&self, sku: &str, on_hand: i64) -> anyhow::Result<()> {
        crate::stock_stack::seed(
            self.0,
            &[(
                sku.to_owned(),
                format!("Product {sku}"),
                1_000,
                "PYG".to_owned(),
                on_hand,
            )],
        )
        .await
    }

    async fn on_hand(&self, sku: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT (payload->>'on_hand')::bigint FROM inventory_view WHERE view_id = $1",
        )
        .bind(sku)
        .fetch_one(self.0)
        .await?)
    }

    async fn orders_of_key(&self, key: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_type = 'Order' AND aggregate_id = $1 \
             AND event_type = 'OrderPlaced'",
        )
        .bind(key)
        .fetch_one(self.0)
        .await?)
    }

    async fn orders_with(&self, sku: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events, json_array_elements(payload->'OrderPlaced'->'lines') AS l \
             WHERE aggregate_type = 'Order' AND event_type = 'OrderPlaced' AND l->>'sku' = $1",
        )
        .bind(sku)
        .fetch_one(self.0)
        .await?)
    }
}

/// Runs both scenarios against `target`, whose store is `store`.
pub async fn run(target: &Target, store: &impl Store) -> anyhow::Result<Findings> {
    store.add_product(STORM_SKU, STORM_STOCK).await?;
    store.add_product(LAST_SKU, LAST_STOCK).await?;
    let key = uuid::Uuid::new_v4().to_string();
    let storm_body = body(&[(STORM_SKU.to_owned(), 1)]);
    let token = &target.tokens[0];
    let storm: Vec<Option<u16>> =
        join_all((0..DUPLICATES).map(|_| post_checkout(target, token, &key, &storm_body)))
            .await
            .into_iter()
            .map(|answer| answer.map(|(status, _)| status))
            .collect();
    let last_body = body(&[(LAST_SKU.to_owned(), 1)]);
    let keys: Vec<String> = (0..BUYERS)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let last: Vec<Option<u16>> = join_all(keys.iter().enumerate().map(|(i, key)| {
        post_checkout(
            target,
            &target.tokens[i % target.tokens.len()],
            key,
            &last_body,
        )
    }))
    .await
    .into_iter()
    .map(|answer| answer.map(|(status, _)| status))
    .collect();
    Ok(Findings {
        storm: Answers::of(&storm),
        storm_orders: store.orders_of_key(&key).await?,
        storm_units_moved: STORM_STOCK - store.on_hand(STORM_SKU).await?,
        last: Answers::of(&last),
        last_orders: store.orders_with(LAST_SKU).await?,
        last_on_hand: store.on_hand(LAST_SKU).await?,
    })
}

/// What is wrong in `findings`, in words ("none" when nothing is).
fn wrong(findings: &Findings) -> (String, String) {
    let mut storm = Vec::new();
    let f = findings;
    if f.storm.created > 1 {
        storm.push(format!(
            "{} duplicates answered 201 as new orders",
            f.storm.created - 1
        ));
    }
    let not_replayed = f.storm.refused + f.storm.failed;
    if not_replayed > 0 {
        storm.push(format!(
            "{not_replayed} duplicates refused or failed instead of replayed"
        ));
    }
    if f.storm_orders != 1 {
        storm.push(format!("{} orders stored", f.storm_orders));
    }
    if f.storm_units_moved != f.storm_orders {
        storm.push(format!(
            "stock moved {} units for {} order(s)",
            f.storm_units_moved, f.storm_orders
        ));
    }
    let mut last = Vec::new();
    let sold = usize::try_from(LAST_STOCK).unwrap_or(0);
    if f.last_orders > LAST_STOCK {
        last.push(format!(
            "oversold: {} orders for {LAST_STOCK} units",
            f.last_orders
        ));
    }
    if f.last.created != sold {
        last.push(format!("{} answered 201", f.last.created));
    }
    if f.last.failed > 0 {
        last.push(format!("{} failed", f.last.failed));
    }
    if f.last_on_hand != LAST_STOCK - f.last_orders {
        last.push(format!(
            "stock on hand {} after {} orders (lost updates)",
            f.last_on_hand, f.last_orders
        ));
    }
    let words = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join("; ")
        }
    };
    (words(storm), words(last))
}

/// The findings of each system, as a Markdown table.
pub fn print<'a>(systems: impl Iterator<Item = (&'static str, &'a Findings)>) {
    println!("| scenario | system | 201 | 200 replayed | 4xx | 5xx or none | orders stored | stock | wrong |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {DUPLICATES} duplicates of one key | (the contract) | 1 | {} | 0 | 0 | 1 | moved 1 | |",
        DUPLICATES - 1
    );
    println!(
        "| {BUYERS} buyers of the last {LAST_STOCK} units | (the contract) | {LAST_STOCK} | 0 | {} | 0 | {LAST_STOCK} | 0 left | |",
        BUYERS - LAST_STOCK as usize
    );
    for (label, f) in systems {
        let (storm, last) = wrong(f);
        println!(
            "| {DUPLICATES} duplicates of one key | {label} | {} | {} | {} | {} | {} | moved {} | {storm} |",
            f.storm.created,
            f.storm.replayed,
            f.storm.refused,
            f.storm.failed,
            f.storm_orders,
            f.storm_units_moved
        );
        println!(
            "| {BUYERS} buyers of the last {LAST_STOCK} units | {label} | {} | {} | {} | {} | {} | {} left | {last} |",
            f.last.created, f.last.replayed, f.last.refused, f.last.failed, f.last_orders, f.last_on_hand
        );
    }
}
