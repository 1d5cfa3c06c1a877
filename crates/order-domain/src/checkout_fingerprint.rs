use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{CustomerId, OrderNote, Quantity, Sku};

/// What a checkout request asked for, reduced to a SHA-256: the customer, the
/// lines as a set sorted by SKU (sku and quantity, not prices: prices are the
/// server's), and the note.
///
/// A retry of a checkout must carry the same fingerprint; the same key with
/// another fingerprint is a reused key, not a retry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckoutFingerprint(String);

impl CheckoutFingerprint {
    /// Version tag of the canonical form. Bump it (and keep the old one
    /// readable) if the form ever changes, or old keys stop replaying.
    const FORM: &'static [u8] = b"checkout-fingerprint/v1";

    pub fn of<'a>(
        customer: &CustomerId,
        lines: impl IntoIterator<Item = (&'a Sku, Quantity)>,
        note: Option<&OrderNote>,
    ) -> Self {
        let mut lines: Vec<(&Sku, Quantity)> = lines.into_iter().collect();
        lines.sort();
        let mut hash = Sha256::new();
        hash.update(Self::FORM);
        field(&mut hash, customer.as_str().as_bytes());
        hash.update(u64::try_from(lines.len()).unwrap_or(u64::MAX).to_be_bytes());
        for (sku, quantity) in lines {
            field(&mut hash, sku.as_str().as_bytes());
            hash.update(quantity.get().to_be_bytes());
        }
        match note {
            // An absent note and an empty note ask for the same thing.
            Some(note) if !note.as_str().is_empty() => field(&mut hash, note.as_str().as_bytes()),
            _ => field(&mut hash, b""),
        }
        let digest = hash.finalize();
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A length-prefixed field, so that no two different requests share bytes.
fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
    hash.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::try_from(s).unwrap()
    }

    fn qty(n: i64) -> Quantity {
        Quantity::try_from(n).unwrap()
    }

    fn customer(s: &str) -> CustomerId {
        CustomerId::try_from(s).unwrap()
    }

    fn note(s: &str) -> OrderNote {
        OrderNote::try_from(s).unwrap()
    }

    #[test]
    fn it_ignores_the_order_of_the_lines() {
        let (a, b) = (sku("A"), sku("B"));
        let ab = CheckoutFingerprint::of(&customer("c"), [(&a, qty(1)), (&b, qty(2))], None);
        let ba = CheckoutFingerprint::of(&customer("c"), [(&b, qty(2)), (&a, qty(1))], None);
        assert_eq!(ab, ba);
        assert_eq!(ab.as_str().len(), 64);
    }

    #[test]
    fn it_changes_with_the_customer_the_lines_or_the_note() {
        let a = sku("A");
        let base = CheckoutFingerprint::of(&customer("c"), [(&a, qty(1))], Some(&note("hi")));
        for other in [
            CheckoutFingerprint::of(&customer("d"), [(&a, qty(1))], Some(&note("hi"))),
            CheckoutFingerprint::of(&customer("c"), [(&a, qty(2))], Some(&note("hi"))),
            CheckoutFingerprint::of(&customer("c"), [(&sku("B"), qty(1))], Some(&note("hi"))),
            CheckoutFingerprint::of(&customer("c"), [(&a, qty(1))], Some(&note("ho"))),
            CheckoutFingerprint::of(&customer("c"), [(&a, qty(1))], None),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn it_treats_an_empty_note_as_no_note() {
        let a = sku("A");
        assert_eq!(
            CheckoutFingerprint::of(&customer("c"), [(&a, qty(1))], Some(&note(""))),
            CheckoutFingerprint::of(&customer("c"), [(&a, qty(1))], None)
        );
    }

    #[test]
    fn it_cannot_be_fooled_by_moving_characters_between_fields() {
        // "c" + sku "AB" vs "cA" + sku "B": concatenation would collide.
        assert_ne!(
            CheckoutFingerprint::of(&customer("c"), [(&sku("AB"), qty(1))], None),
            CheckoutFingerprint::of(&customer("cA"), [(&sku("B"), qty(1))], None)
        );
    }

    #[test]
    fn it_is_stable_across_releases() {
        let fp =
            CheckoutFingerprint::of(&customer("cust-1"), [(&sku("DOG-FOOD-3KG"), qty(2))], None);
        assert_eq!(
            fp.as_str(),
            "1c9758695ebade9f73d1412d58bae00f9f232b61ef4681c3b5f27abc77424c16"
        );
    }
}
