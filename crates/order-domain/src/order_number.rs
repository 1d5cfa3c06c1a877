use serde::{Deserialize, Serialize};

use crate::OrderId;

/// Crockford's base 32: no I, L, O or U, so a number read out over the phone
/// cannot be misheard as another.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The number a customer quotes to support: `ORD-XXXX-XXXX-XXXX`.
///
/// Derived from the order id (so replays of a checkout show the same number and
/// no counter has to be coordinated), it carries 60 bits: among a million
/// orders of one tenant, the chance that two share a number is about 4 in 10
/// million. The store still enforces uniqueness per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderNumber(String);

impl OrderNumber {
    pub fn for_order(id: OrderId) -> Self {
        let bytes = id.as_uuid().as_bytes();
        let mut head = [0_u8; 8];
        head.copy_from_slice(&bytes[..8]);
        // UUIDv5's version nibble sits in byte 6; the first 48 bits and the
        // 12 after the nibble are hash output. Take 60 of them.
        let raw = u64::from_be_bytes(head);
        let bits = ((raw >> 16) << 12) | (raw & 0x0fff);
        let mut out = String::with_capacity(18);
        out.push_str("ORD");
        for i in 0..12 {
            if i % 4 == 0 {
                out.push('-');
            }
            let shift = 55 - 5 * i;
            let index = usize::try_from((bits >> shift) & 0x1f).unwrap_or(0);
            out.push(char::from(ALPHABET[index]));
        }
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for OrderNumber {
    /// Only for numbers read back from the store, which were made by
    /// [`OrderNumber::for_order`].
    fn from(value: String) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::{IdempotencyKey, TenantId};

    fn number(key: &str) -> OrderNumber {
        let tenant = TenantId::try_from("acme").unwrap();
        let key = IdempotencyKey::try_from(key).unwrap();
        OrderNumber::for_order(OrderId::for_checkout(&tenant, &key))
    }

    #[test]
    fn it_reads_as_three_groups_of_four_unambiguous_characters() {
        let n = number("k-1");
        let s = n.as_str();
        assert_eq!(s.len(), 18, "{s}");
        assert!(s.starts_with("ORD-"));
        for group in s[4..].split('-') {
            assert_eq!(group.len(), 4, "{s}");
            assert!(group.bytes().all(|b| ALPHABET.contains(&b)), "{s}");
        }
    }

    #[test]
    fn it_keeps_order_numbers_stable_across_releases() {
        // Computed independently of this code (Python, from the pinned order id).
        assert_eq!(number("k-1").as_str(), "ORD-G8ES-RBY6-N1V8");
    }

    #[test]
    fn it_gives_a_replayed_checkout_the_same_number() {
        assert_eq!(number("k-1"), number("k-1"));
    }

    #[test]
    fn it_does_not_collide_across_two_hundred_thousand_orders() {
        let numbers: HashSet<_> = (0..200_000).map(|i| number(&format!("k-{i}"))).collect();
        assert_eq!(numbers.len(), 200_000);
    }
}
