//! The catalogue prices this process has seen, so that a checkout is priced
//! without a round trip of its own.
//!
//! Never trusted: the append compares every priced line with the inventory
//! row it locks (`append_to_stream`), refuses a line whose name or price has
//! changed since ('repriced'), and the checkout then forgets what it had,
//! reads the catalogue and decides again. An order is never placed at a
//! stale price; a stale entry costs one extra round trip, once.
//!
//! Bounded: at most [`MAX_ENTRIES`] prices (about 200 bytes each); past
//! that, everything is dropped and refilled on demand. Several replicas
//! each keep their own; nothing here needs to agree between them.

use std::collections::HashMap;
use std::sync::RwLock;

use order_domain::{Sku, TenantId};

use crate::catalogue_queries::CataloguePrice;

/// Most prices kept per process.
pub(crate) const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct PriceCache {
    tenants: RwLock<Tenants>,
}

#[derive(Debug, Default)]
struct Tenants {
    prices: HashMap<TenantId, HashMap<Sku, CataloguePrice>>,
    count: usize,
}

impl PriceCache {
    /// The known prices of `skus` in `tenant`, in their order, `None` where
    /// unknown here.
    pub fn lookup(&self, tenant: &TenantId, skus: &[&Sku]) -> Vec<Option<CataloguePrice>> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        let known = tenants.prices.get(tenant);
        skus.iter()
            .map(|sku| known.and_then(|k| k.get(*sku)).cloned())
            .collect()
    }

    pub fn remember(
        &self,
        tenant: &TenantId,
        prices: impl IntoIterator<Item = (Sku, CataloguePrice)>,
    ) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        for (sku, price) in prices {
            if tenants.count >= MAX_ENTRIES {
                tenants.prices.clear();
                tenants.count = 0;
            }
            let added = tenants
                .prices
                .entry(tenant.clone())
                .or_default()
                .insert(sku, price)
                .is_none();
            tenants.count += usize::from(added);
        }
    }

    pub fn forget(&self, tenant: &TenantId, skus: &[&Sku]) {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        if let Some(known) = tenants.prices.get_mut(tenant) {
            for sku in skus {
                removed += usize::from(known.remove(*sku).is_some());
            }
        }
        tenants.count -= removed;
    }
}

#[cfg(test)]
mod tests {
    use order_domain::{Currency, Money, ProductName};

    use super::*;

    fn price(amount: i64) -> CataloguePrice {
        CataloguePrice {
            name: ProductName::try_from("Dog food").unwrap(),
            unit_price: Money::new(amount, Currency::try_from("PYG").unwrap()),
        }
    }

    fn sku(s: &str) -> Sku {
        Sku::try_from(s).unwrap()
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::try_from(s).unwrap()
    }

    #[test]
    fn it_answers_per_tenant_and_forgets_on_request() {
        let cache = PriceCache::default();
        let (a, b) = (sku("A"), sku("B"));
        cache.remember(&tenant("acme"), [(a.clone(), price(100))]);
        assert_eq!(
            cache.lookup(&tenant("acme"), &[&a, &b]),
            vec![Some(price(100)), None]
        );
        assert_eq!(cache.lookup(&tenant("other"), &[&a]), vec![None]);
        cache.forget(&tenant("acme"), &[&a]);
        assert_eq!(cache.lookup(&tenant("acme"), &[&a]), vec![None]);
    }

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let cache = PriceCache::default();
        let acme = tenant("acme");
        for i in 0..MAX_ENTRIES + 10 {
            cache.remember(&acme, [(sku(&format!("SKU-{i}")), price(1))]);
        }
        let tenants = cache.tenants.read().unwrap_or_else(|e| e.into_inner());
        assert!(tenants.count <= MAX_ENTRIES);
        assert_eq!(
            tenants.count,
            tenants.prices.values().map(HashMap::len).sum::<usize>()
        );
    }
}
