//! The orders this process knows to exist, so that a retried checkout is
//! read instead of decided and appended.
//!
//! A checkout assumes its key is new and appends in one round trip; when
//! the order exists, the store answers with its events instead (correct,
//! but the request paid for pricing, deciding and sending an append). A key
//! this process placed or answered before is very likely a retry: for those,
//! reading the stream first is the cheaper round trip. Only a hint: an order
//! not in here (placed by another replica, or before a restart) is still
//! found by the append, and nothing is ever inserted that does not exist.
//!
//! Bounded: at most [`MAX_ORDERS`] ids (16 bytes each); past that the set
//! is emptied and refills as orders are seen.

use std::collections::HashSet;
use std::sync::RwLock;

use uuid::Uuid;

/// Most order ids kept per process (about 2 MiB with the set's overhead).
pub(crate) const MAX_ORDERS: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct KnownOrders {
    ids: RwLock<HashSet<Uuid>>,
}

impl KnownOrders {
    pub fn contains(&self, id: &Uuid) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Records an order that exists (it was stored, or read from the store).
    pub fn insert(&self, id: Uuid) {
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        if ids.len() >= MAX_ORDERS {
            ids.clear();
        }
        ids.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_knows_what_it_was_told_and_stays_bounded() {
        let known = KnownOrders::default();
        let first = Uuid::from_u128(1);
        assert!(!known.contains(&first));
        known.insert(first);
        assert!(known.contains(&first));
        for i in 0..MAX_ORDERS as u128 + 5 {
            known.insert(Uuid::from_u128(i + 2));
        }
        assert!(known.ids.read().unwrap().len() <= MAX_ORDERS);
    }
}
