//! Builders shared by the domain's tests. Each takes plain strings and
//! numbers so a test reads like the scenario it describes.

use chrono::{DateTime, TimeZone, Utc};

use crate::order::{OrderCommand, OrderEvent, PlaceOrder, PricedLine};
use crate::{
    CheckoutFingerprint, Currency, CustomerId, IdempotencyKey, Money, OrderChannel, OrderNote,
    ProductName, Quantity, Sku, TenantId,
};

pub fn tenant(s: &str) -> TenantId {
    TenantId::try_from(s).unwrap()
}

pub fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::try_from(s).unwrap()
}

pub fn customer(s: &str) -> CustomerId {
    CustomerId::try_from(s).unwrap()
}

pub fn sku(s: &str) -> Sku {
    Sku::try_from(s).unwrap()
}

pub fn qty(n: i64) -> Quantity {
    Quantity::try_from(n).unwrap()
}

pub fn currency(code: &str) -> Currency {
    Currency::try_from(code).unwrap()
}

pub fn pyg(amount: i64) -> Money {
    Money::new(amount, currency("PYG"))
}

pub fn name(s: &str) -> ProductName {
    ProductName::try_from(s).unwrap()
}

pub fn note(s: &str) -> OrderNote {
    OrderNote::try_from(s).unwrap()
}

/// 2026-11-28 10:00:00 UTC plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

/// A line of `quantity` x `sku` at `price` guaraníes.
pub fn line(sku_code: &str, quantity: i64, price: i64) -> PricedLine {
    PricedLine {
        sku: sku(sku_code),
        name: name(&format!("Product {sku_code}")),
        quantity: qty(quantity),
        unit_price: pyg(price),
    }
}

/// Customer `cust-1` of tenant `acme` checking out with key `k-1`.
pub fn checkout(lines: Vec<PricedLine>) -> PlaceOrder {
    checkout_by("cust-1", "k-1", lines, None)
}

pub fn checkout_by(
    customer_id: &str,
    idempotency_key: &str,
    lines: Vec<PricedLine>,
    order_note: Option<&str>,
) -> PlaceOrder {
    // A literal, not `Checkout::priced`: the aggregate's own tests must be
    // able to send it lines that `Checkout::new` would refuse.
    let customer = customer(customer_id);
    let note = order_note.map(note);
    PlaceOrder {
        tenant: tenant("acme"),
        idempotency_key: key(idempotency_key),
        fingerprint: CheckoutFingerprint::of(
            &customer,
            lines.iter().map(|l| (&l.sku, l.quantity)),
            note.as_ref(),
        ),
        customer,
        currency: currency("PYG"),
        lines,
        note,
        placed_at: at(0),
        channel: OrderChannel::Api,
    }
}

/// The events a first checkout produces, computed by the aggregate itself.
pub fn placed(place: PlaceOrder) -> OrderEvent {
    let events = crate::Order::default()
        .decide(OrderCommand::PlaceOrder(place))
        .unwrap();
    assert_eq!(events.len(), 1);
    events.into_iter().next().unwrap()
}
