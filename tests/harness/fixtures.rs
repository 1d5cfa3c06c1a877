//! Builders for the shop's values and the common set-ups of a scenario.

use chrono::{DateTime, TimeZone, Utc};
use order_domain::order::{Checkout, RequestedLine};
use order_domain::{
    Currency, CustomerId, IdempotencyKey, Money, OrderId, OrderNote, ProductName, Quantity, Sku,
    StockDelta, StockReason, TenantId,
};
use order_store::{Actor, CatalogueCommands, CommandContext};
use sqlx::PgPool;

pub fn tenant(s: &str) -> TenantId {
    TenantId::try_from(s).unwrap()
}

pub fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::try_from(s).unwrap()
}

pub fn sku(s: &str) -> Sku {
    Sku::try_from(s).unwrap()
}

pub fn customer(s: &str) -> CustomerId {
    CustomerId::try_from(s).unwrap()
}

pub fn pyg(amount: i64) -> Money {
    Money::new(amount, Currency::try_from("PYG").unwrap())
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

/// Customer `customer_id` of `tenant_slug`.
pub fn as_customer(tenant_slug: &str, customer_id: &str) -> CommandContext {
    CommandContext {
        tenant: tenant(tenant_slug),
        actor: Actor::Customer(customer(customer_id)),
        request_id: None,
    }
}

/// A staff member of `tenant_slug`.
pub fn as_staff(tenant_slug: &str) -> CommandContext {
    CommandContext {
        tenant: tenant(tenant_slug),
        actor: Actor::Staff("staff-1".to_owned()),
        request_id: None,
    }
}

/// A checkout by `customer_id` with key `key_text` of `(sku, quantity)` lines.
pub fn checkout(customer_id: &str, key_text: &str, lines: &[(&str, i64)]) -> Checkout {
    checkout_with_note(customer_id, key_text, lines, None)
}

/// The same, with a note (part of what a retry must repeat).
pub fn checkout_with_note(
    customer_id: &str,
    key_text: &str,
    lines: &[(&str, i64)],
    note: Option<&str>,
) -> Checkout {
    Checkout::new(
        key(key_text),
        customer(customer_id),
        lines
            .iter()
            .map(|(s, q)| RequestedLine {
                sku: sku(s),
                quantity: Quantity::try_from(*q).unwrap(),
            })
            .collect(),
        note.map(|n| OrderNote::try_from(n).unwrap()),
        now(),
    )
    .unwrap()
}

pub fn order_id(tenant_slug: &str, key_text: &str) -> OrderId {
    OrderId::for_checkout(&tenant(tenant_slug), &key(key_text))
}

/// Defines `sku_code` at `price` guaraníes in `tenant_slug` and receives
/// `stock` units of it.
pub async fn stocked_product(
    pool: &PgPool,
    tenant_slug: &str,
    sku_code: &str,
    price: i64,
    stock: i64,
) {
    let catalogue = CatalogueCommands::new(pool.clone());
    let staff = as_staff(tenant_slug);
    catalogue
        .define_product(
            &staff,
            sku(sku_code),
            ProductName::try_from(format!("Product {sku_code}")).unwrap(),
            pyg(price),
            now(),
        )
        .await
        .unwrap();
    if stock > 0 {
        catalogue
            .adjust_stock(
                &staff,
                key(&format!("initial-{sku_code}")),
                sku(sku_code),
                StockDelta::try_from(stock).unwrap(),
                StockReason::Received,
                now(),
            )
            .await
            .unwrap();
    }
}

pub async fn on_hand(pool: &PgPool, tenant_slug: &str, sku_code: &str) -> i64 {
    sqlx::query_scalar("SELECT on_hand FROM inventory WHERE tenant_id = $1 AND sku = $2")
        .bind(tenant_slug)
        .bind(sku_code)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The read model must equal a fresh fold of the events table: replays
/// every event through the projections into a shadow schema and compares.
/// Polls `holds` every 20 ms until it is true; fails with `what` after
/// `within`. A wait for a condition, never a fixed sleep.
pub async fn wait_until(what: &str, within: std::time::Duration, mut holds: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !holds() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn assert_read_model_matches_events(pool: &PgPool) {
    let report = rebuild_projections::rebuild::verify(pool, "fold_check")
        .await
        .unwrap();
    assert!(
        report.is_clean(),
        "read model drifted from the events: {report:#?}"
    );
}

/// Records what a rebuild says while it waits.
#[derive(Debug, Default)]
pub struct RecordedWaits(std::sync::Mutex<Vec<String>>);

impl RecordedWaits {
    pub fn said(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl rebuild_projections::rebuild::RebuildProgress for RecordedWaits {
    fn waiting(&self, why: &str) {
        self.0.lock().unwrap().push(why.to_owned());
    }
}
