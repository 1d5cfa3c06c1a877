//! Realistic event histories of any size, written straight into the event
//! store (no read model: run a rebuild afterwards to derive it).
//!
//! Every event is produced by the domain's own `decide`, so the history is
//! one the live write path could have written: products defined, stock
//! received, orders placed (1 to 3 lines), some paid, some of those shipped,
//! some cancelled (by customers before payment, by staff after), and a few
//! checkouts abandoned before any order was placed with their key. Stock is
//! received generously first, so no order would have been refused.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use order_domain::order::{
    AbandonCheckout, AbandonedBy, CancelledBy, Checkout, OrderCommand, OrderEvent, PricedLine,
    RequestedLine,
};
use order_domain::product::{DefineProduct, ProductCommand};
use order_domain::stock_adjustment::{AdjustStock, StockAdjustmentCommand};
use order_domain::{
    Currency, CustomerId, IdempotencyKey, InvalidValue, Money, Order, OrderId, Product, ProductId,
    ProductName, Quantity, Sku, StockAdjustment, StockAdjustmentId, StockDelta, StockReason,
    TenantId,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::PgPool;

/// The shape of a history.
#[derive(Debug, Clone)]
pub struct HistorySpec {
    /// Stop after about this many events.
    pub events: u64,
    pub tenants: usize,
    pub products_per_tenant: usize,
    /// For reproducible histories.
    pub seed: u64,
}

impl Default for HistorySpec {
    fn default() -> Self {
        Self {
            events: 10_000,
            tenants: 4,
            products_per_tenant: 25,
            seed: 7,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Value(#[from] InvalidValue),
    #[error("the domain refused a generated command: {0}")]
    Domain(String),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistoryStats {
    pub events: u64,
    /// Order streams: orders placed, and checkouts abandoned.
    pub orders: u64,
}

/// One row of `events`.
struct Row {
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    /// The version this code writes the event at, as the service would.
    event_version: String,
    payload: Value,
    tenant: String,
    key: Option<String>,
}

const BATCH: usize = 10_000;

/// Writes a history of about `spec.events` events into `pool`'s event store,
/// in transactions of 10,000 events.
pub async fn generate(pool: &PgPool, spec: &HistorySpec) -> Result<HistoryStats, HistoryError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let mut clock = start;
    let mut tick = |rng: &mut StdRng| -> DateTime<Utc> {
        clock += Duration::microseconds(rng.random_range(1..2_000));
        clock
    };
    let pyg = Currency::try_from("PYG")?;
    let mut rows: Vec<Row> = Vec::with_capacity(BATCH);
    let mut stats = HistoryStats::default();
    let mut catalogue: Vec<(TenantId, Vec<PricedLine>)> = Vec::new();
    for t in 0..spec.tenants {
        let tenant = TenantId::try_from(format!("tenant-{t}"))?;
        let mut lines = Vec::new();
        for p in 0..spec.products_per_tenant {
            let sku = Sku::try_from(format!("SKU-{p:04}"))?;
            let name = ProductName::try_from(format!("Product {p} of tenant {t}"))?;
            let price = Money::new(rng.random_range(100..500_000), pyg);
            let product = Product::default();
            let events = product
                .decide(ProductCommand::DefineProduct(DefineProduct {
                    tenant: tenant.clone(),
                    sku: sku.clone(),
                    name: name.clone(),
                    unit_price: price,
                    at: tick(&mut rng),
                }))
                .map_err(|e| HistoryError::Domain(e.to_string()))?;
            push(
                &mut rows,
                Product::TYPE,
                ProductId::new(&tenant, &sku).to_string(),
                1,
                &tenant,
                None,
                events,
            )?;
            // Plenty of stock: a million units per receipt, enough receipts.
            let receipts = 1 + spec.events / 100_000;
            for r in 0..receipts {
                let key = IdempotencyKey::try_from(format!("receipt-{p}-{r}"))?;
                let events = StockAdjustment::default()
                    .decide(StockAdjustmentCommand::AdjustStock(AdjustStock {
                        tenant: tenant.clone(),
                        idempotency_key: key.clone(),
                        sku: sku.clone(),
                        delta: StockDelta::try_from(StockDelta::MAX_ABS)?,
                        reason: StockReason::Received,
                        at: tick(&mut rng),
                    }))
                    .map_err(|e| HistoryError::Domain(e.to_string()))?;
                let id = StockAdjustmentId::for_key(&tenant, &key).to_string();
                push(
                    &mut rows,
                    StockAdjustment::TYPE,
                    id,
                    1,
                    &tenant,
                    Some(key.to_string()),
                    events,
                )?;
            }
            lines.push(PricedLine {
                sku,
                name,
                quantity: Quantity::try_from(1_i64)?,
                unit_price: price,
            });
        }
        catalogue.push((tenant, lines));
    }
    flush(pool, &mut rows, &mut stats).await?;
    let mut next_customer: HashMap<usize, u64> = HashMap::new();
    while stats.events + (rows.len() as u64) < spec.events {
        let t = rng.random_range(0..catalogue.len());
        let (tenant, products) = &catalogue[t];
        let n = next_customer.entry(t).or_insert(0);
        *n += 1;
        let customer = CustomerId::try_from(format!("customer-{}", *n % 5_000))?;
        let key = IdempotencyKey::try_from(format!("checkout-{t}-{n}"))?;
        let count = rng.random_range(1..=3_usize.min(products.len()));
        let first = rng.random_range(0..products.len());
        let lines: Vec<PricedLine> = (0..count)
            .map(|i| {
                let mut line = products[(first + i) % products.len()].clone();
                line.quantity =
                    Quantity::try_from(rng.random_range(1..=3_i64)).unwrap_or(line.quantity);
                line
            })
            .collect();
        let mut order = Order::default();
        let mut sequence = 0;
        let requested = lines
            .iter()
            .map(|line| RequestedLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
            })
            .collect();
        let asked = Checkout::new(
            key.clone(),
            customer.clone(),
            requested,
            None,
            tick(&mut rng),
        )
        .map_err(|broken| HistoryError::Domain(broken.error.to_string()))?;
        let mut prices = lines.iter();
        let place = asked
            .priced(tenant.clone(), |_| {
                prices
                    .next()
                    .map(|line| (line.name.clone(), line.unit_price))
            })
            .map_err(|e| HistoryError::Domain(e.to_string()))?;
        let mut commands = vec![OrderCommand::PlaceOrder(place)];
        let fate: f64 = rng.random();
        if fate < 0.02 {
            // The answer was lost and the client settled the key instead.
            commands = vec![OrderCommand::AbandonCheckout(AbandonCheckout {
                tenant: tenant.clone(),
                idempotency_key: key.clone(),
                by: if fate < 0.015 {
                    AbandonedBy::Customer(customer)
                } else {
                    AbandonedBy::Staff
                },
                at: tick(&mut rng),
            })];
        } else if fate < 0.1 {
            commands.push(OrderCommand::Cancel {
                by: CancelledBy::Customer(customer),
                at: tick(&mut rng),
            });
        } else if fate < 0.5 {
            commands.push(OrderCommand::MarkPaid { at: tick(&mut rng) });
            if fate < 0.3 {
                commands.push(OrderCommand::Ship { at: tick(&mut rng) });
            } else if fate < 0.33 {
                commands.push(OrderCommand::Cancel {
                    by: CancelledBy::Staff,
                    at: tick(&mut rng),
                });
            }
        }
        let id = OrderId::for_checkout(tenant, &key).to_string();
        for command in commands {
            let events = order
                .decide(command)
                .map_err(|e| HistoryError::Domain(e.to_string()))?;
            for event in events {
                sequence += 1;
                let stream_key = matches!(
                    event,
                    OrderEvent::OrderPlaced(_) | OrderEvent::CheckoutAbandoned(_)
                )
                .then(|| key.to_string());
                order.apply(event.clone());
                push(
                    &mut rows,
                    Order::TYPE,
                    id.clone(),
                    sequence,
                    tenant,
                    stream_key,
                    vec![event],
                )?;
            }
        }
        stats.orders += 1;
        if rows.len() >= BATCH {
            flush(pool, &mut rows, &mut stats).await?;
        }
    }
    flush(pool, &mut rows, &mut stats).await?;
    Ok(stats)
}

fn push<E: DomainEvent>(
    rows: &mut Vec<Row>,
    aggregate_type: &'static str,
    aggregate_id: String,
    sequence: i64,
    tenant: &TenantId,
    key: Option<String>,
    events: Vec<E>,
) -> Result<(), HistoryError> {
    for event in events {
        rows.push(Row {
            aggregate_type,
            aggregate_id: aggregate_id.clone(),
            sequence,
            event_type: event.event_type(),
            event_version: event.event_version(),
            payload: serde_json::to_value(&event)?,
            tenant: tenant.to_string(),
            key: key.clone(),
        });
    }
    Ok(())
}

async fn flush(
    pool: &PgPool,
    rows: &mut Vec<Row>,
    stats: &mut HistoryStats,
) -> Result<(), HistoryError> {
    if rows.is_empty() {
        return Ok(());
    }
    let metadata = |tenant: &str| serde_json::json!({ "tenant_id": tenant, "actor": "staff:synthetic-history" });
    let column = |value: fn(&Row) -> String| rows.iter().map(value).collect::<Vec<String>>();
    sqlx::query_file!(
        "sql/insert_synthetic_events.sql",
        &column(|r| r.aggregate_type.to_owned()),
        &column(|r| r.aggregate_id.clone()),
        &rows.iter().map(|r| r.sequence).collect::<Vec<i64>>(),
        &column(|r| r.event_type.clone()),
        &column(|r| r.event_version.clone()),
        &rows
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<Value>>(),
        &rows
            .iter()
            .map(|r| metadata(&r.tenant))
            .collect::<Vec<Value>>(),
        &column(|r| r.tenant.clone()),
        &rows
            .iter()
            .map(|r| r.key.clone())
            .collect::<Vec<Option<String>>>() as &[Option<String>]
    )
    .execute(pool)
    .await?;
    stats.events += rows.len() as u64;
    rows.clear();
    Ok(())
}
