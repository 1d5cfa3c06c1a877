use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{IdempotencyKey, InvalidValue, Sku, TenantId};

/// Namespace of order ids. Pinned forever: changing it would give every
/// retried checkout a new stream, i.e. a second order.
const CHECKOUT_NAMESPACE: Uuid = Uuid::from_u128(0x5b1e_7f0c_2c1a_4f7e_9a57_30c4_d2b1_8e61);
/// Namespace of stock adjustment ids (same rule as above).
const STOCK_ADJUSTMENT_NAMESPACE: Uuid = Uuid::from_u128(0x0d7c_3e92_64af_4b0e_8f3d_a1c6_5e70_b924);

/// Unambiguous bytes for a (tenant, key) pair: each part is length-prefixed,
/// so no choice of tenant and key can be split another way.
fn pair_bytes(tenant: &str, key: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + tenant.len() + key.len());
    for part in [tenant, key] {
        // Both parts are at most 255 bytes, so the u32 prefix cannot truncate.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(part.as_bytes());
    }
    bytes
}

/// The identity of an order, and so of its event stream.
///
/// A checkout's id is not random: it is a UUIDv5 of (tenant, Idempotency-Key),
/// so every retry of a checkout addresses the same stream and the event store's
/// uniqueness turns a duplicate into a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    pub fn for_checkout(tenant: &TenantId, key: &IdempotencyKey) -> Self {
        Self(Uuid::new_v5(
            &CHECKOUT_NAMESPACE,
            &pair_bytes(tenant.as_str(), key.as_str()),
        ))
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for OrderId {
    fn from(value: Uuid) -> Self {
        Self(value)
    }
}

impl From<OrderId> for Uuid {
    fn from(value: OrderId) -> Self {
        value.0
    }
}

impl std::str::FromStr for OrderId {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| InvalidValue::new("order id", "expected a UUID"))
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The identity of one keyed stock movement: UUIDv5 of (tenant,
/// Idempotency-Key), so a retried stock receipt lands on the same stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StockAdjustmentId(Uuid);

impl StockAdjustmentId {
    pub fn for_key(tenant: &TenantId, key: &IdempotencyKey) -> Self {
        Self(Uuid::new_v5(
            &STOCK_ADJUSTMENT_NAMESPACE,
            &pair_bytes(tenant.as_str(), key.as_str()),
        ))
    }
}

impl std::fmt::Display for StockAdjustmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The identity of a product's stream: `tenant/sku`. Unambiguous because a
/// tenant slug cannot contain `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductId(String);

impl ProductId {
    pub fn new(tenant: &TenantId, sku: &Sku) -> Self {
        Self(format!("{tenant}/{sku}"))
    }
}

impl std::fmt::Display for ProductId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::try_from(s).unwrap()
    }

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::try_from(s).unwrap()
    }

    #[test]
    fn it_derives_the_same_order_id_for_the_same_tenant_and_key() {
        assert_eq!(
            OrderId::for_checkout(&tenant("acme"), &key("k-1")),
            OrderId::for_checkout(&tenant("acme"), &key("k-1"))
        );
    }

    #[test]
    fn it_keeps_order_ids_stable_across_releases() {
        // Pinned vectors: if one of these changes, retries of old checkouts
        // would create second orders. Never update them; add new ones.
        // Computed independently (Python: uuid5 over the length-prefixed bytes).
        let vectors = [
            ("acme", "k-1", "821d9c2f-c6a8-5768-a08e-6dc79c671690"),
            (
                "demo",
                "6f1c8a52-1d9e-4a8e-9c2a-5d2b7f0e4c11",
                "9a852c1e-5e9c-5ca6-91b8-6f62ddfb7039",
            ),
            ("pet-shop-42", "!~", "5a815736-a255-56f5-8609-5b15c519ded3"),
        ];
        for (t, k, expected) in vectors {
            let id = OrderId::for_checkout(&tenant(t), &key(k));
            assert_eq!(id.to_string(), expected, "tenant {t:?} key {k:?}");
            assert_eq!(id.as_uuid().get_version_num(), 5);
        }
    }

    #[test]
    fn it_keeps_tenant_and_key_apart_however_they_are_split() {
        assert_ne!(pair_bytes("a:b", "c"), pair_bytes("a", "b:c"));
        assert_ne!(pair_bytes("ab", "c"), pair_bytes("a", "bc"));
        assert_ne!(
            OrderId::for_checkout(&tenant("a-b"), &key("c")),
            OrderId::for_checkout(&tenant("a"), &key("b-c"))
        );
        assert_ne!(
            OrderId::for_checkout(&tenant("ab"), &key("c")),
            OrderId::for_checkout(&tenant("a"), &key("bc"))
        );
    }

    #[test]
    fn it_gives_the_same_key_in_two_tenants_two_orders() {
        assert_ne!(
            OrderId::for_checkout(&tenant("acme"), &key("k")),
            OrderId::for_checkout(&tenant("zeta"), &key("k"))
        );
    }

    #[test]
    fn it_keeps_stock_adjustment_ids_apart_from_order_ids() {
        let (t, k) = (tenant("acme"), key("k-1"));
        assert_ne!(
            StockAdjustmentId::for_key(&t, &k).to_string(),
            OrderId::for_checkout(&t, &k).to_string()
        );
    }

    #[test]
    fn it_parses_order_ids_and_refuses_non_uuids() {
        let id: OrderId = "4f0b2b5e-8d25-5ff7-a7bc-5b0ec5a9d4e3".parse().unwrap();
        assert_eq!(id.to_string(), "4f0b2b5e-8d25-5ff7-a7bc-5b0ec5a9d4e3");
        for bad in [
            "",
            "42",
            "../etc/passwd",
            "4f0b2b5e-8d25-5ff7-a7bc-5b0ec5a9d4e",
        ] {
            assert_eq!(bad.parse::<OrderId>().unwrap_err().field, "order id");
        }
    }
}
