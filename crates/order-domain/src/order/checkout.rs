//! A checkout as the customer asked for it, before the server priced it.
//!
//! Why a type of its own: the fingerprint a retry must match is a function
//! of what was asked (customer, lines, note). Computing it here, once, when
//! the request is built, and carrying it into [`PlaceOrder`], means the
//! fingerprint the aggregate compares and the lines it places cannot come
//! from two different computations. The fields it covers are private for
//! the same reason; the ones it does not cover (when, from which channel)
//! are public.

use chrono::{DateTime, Utc};

use super::{check_lines, LineRuleBroken, OrderError, PlaceOrder, PricedLine};
use crate::{
    CheckoutFingerprint, CustomerId, IdempotencyKey, Money, OrderChannel, OrderNote, ProductName,
    Quantity, Sku, TenantId,
};

/// One line of a checkout as asked: a SKU and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// A checkout request whose lines obey the rules ([`check_lines`]), with
/// its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    idempotency_key: IdempotencyKey,
    customer: CustomerId,
    lines: Vec<RequestedLine>,
    note: Option<OrderNote>,
    fingerprint: CheckoutFingerprint,
    /// When the checkout was asked for; becomes the order's `placed_at`.
    pub at: DateTime<Utc>,
    /// Where it came from (recorded in `OrderPlaced`). Not part of the
    /// fingerprint: a retry from another channel is the same checkout.
    pub channel: OrderChannel,
}

impl Checkout {
    /// Checks the lines and computes the fingerprint. The channel is
    /// [`OrderChannel::Api`] unless set.
    pub fn new(
        idempotency_key: IdempotencyKey,
        customer: CustomerId,
        lines: Vec<RequestedLine>,
        note: Option<OrderNote>,
        at: DateTime<Utc>,
    ) -> Result<Self, LineRuleBroken> {
        check_lines(lines.iter().map(|line| &line.sku))?;
        let fingerprint = CheckoutFingerprint::of(
            &customer,
            lines.iter().map(|line| (&line.sku, line.quantity)),
            note.as_ref(),
        );
        Ok(Self {
            idempotency_key,
            customer,
            lines,
            note,
            fingerprint,
            at,
            channel: OrderChannel::default(),
        })
    }

    /// The same checkout, recorded as coming from `channel`.
    pub fn from_channel(self, channel: OrderChannel) -> Self {
        Self { channel, ..self }
    }

    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.idempotency_key
    }

    pub fn customer(&self) -> &CustomerId {
        &self.customer
    }

    pub fn lines(&self) -> &[RequestedLine] {
        &self.lines
    }

    pub fn note(&self) -> Option<&OrderNote> {
        self.note.as_ref()
    }

    pub fn fingerprint(&self) -> &CheckoutFingerprint {
        &self.fingerprint
    }

    /// The command that places this checkout in `tenant`, each line priced
    /// by `price_of`, which is called once per line, in order, and says the
    /// catalogue's name and unit price (`None`: the catalogue does not have
    /// the SKU). The order's currency is its first line's; the aggregate
    /// refuses lines in another.
    pub fn priced(
        &self,
        tenant: TenantId,
        mut price_of: impl FnMut(&Sku) -> Option<(ProductName, Money)>,
    ) -> Result<PlaceOrder, OrderError> {
        let mut lines = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            let (name, unit_price) = price_of(&line.sku).ok_or_else(|| OrderError::UnknownSku {
                sku: line.sku.clone(),
            })?;
            lines.push(PricedLine {
                sku: line.sku.clone(),
                name,
                quantity: line.quantity,
                unit_price,
            });
        }
        let currency = lines
            .first()
            .map(|line| line.unit_price.currency)
            .ok_or(OrderError::NoLines)?;
        Ok(PlaceOrder {
            tenant,
            idempotency_key: self.idempotency_key.clone(),
            customer: self.customer.clone(),
            lines,
            currency,
            note: self.note.clone(),
            fingerprint: self.fingerprint.clone(),
            placed_at: self.at,
            channel: self.channel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{at, customer, key, name, note, pyg, sku, tenant};

    fn line(code: &str, quantity: i64) -> RequestedLine {
        RequestedLine {
            sku: sku(code),
            quantity: Quantity::try_from(quantity).unwrap(),
        }
    }

    fn checkout(lines: Vec<RequestedLine>, order_note: Option<&str>) -> Checkout {
        Checkout::new(
            key("k-1"),
            customer("cust-1"),
            lines,
            order_note.map(note),
            at(0),
        )
        .unwrap()
    }

    #[test]
    fn it_refuses_lines_that_break_the_rules_before_anything_is_priced() {
        let repeated = Checkout::new(
            key("k-1"),
            customer("cust-1"),
            vec![line("A", 1), line("A", 2)],
            None,
            at(0),
        )
        .unwrap_err();
        assert_eq!(repeated.line, Some(1));
        assert!(Checkout::new(key("k-1"), customer("cust-1"), vec![], None, at(0)).is_err());
    }

    #[test]
    fn a_retry_in_another_line_order_or_channel_has_the_same_fingerprint() {
        let first = checkout(vec![line("A", 1), line("B", 2)], Some("gift"));
        let retry = checkout(vec![line("B", 2), line("A", 1)], Some("gift"))
            .from_channel(OrderChannel::Shop);
        assert_eq!(first.fingerprint(), retry.fingerprint());
        let other = checkout(vec![line("A", 1), line("B", 3)], Some("gift"));
        assert_ne!(first.fingerprint(), other.fingerprint());
    }

    #[test]
    fn the_command_carries_the_fingerprint_it_was_built_with() {
        let asked =
            checkout(vec![line("A", 2), line("B", 1)], None).from_channel(OrderChannel::Shop);
        let place = asked
            .priced(tenant("acme"), |sku| {
                Some((name(&format!("Product {sku}")), pyg(150)))
            })
            .unwrap();
        assert_eq!(&place.fingerprint, asked.fingerprint());
        assert_eq!(place.lines.len(), 2);
        assert_eq!(place.lines[0].name.as_str(), "Product A");
        assert_eq!(place.currency, pyg(150).currency);
        assert_eq!(place.channel, OrderChannel::Shop);
        assert_eq!(place.placed_at, at(0));
    }

    #[test]
    fn a_line_the_catalogue_does_not_price_is_an_unknown_sku() {
        let asked = checkout(vec![line("A", 1), line("GONE", 1)], None);
        let refused = asked
            .priced(tenant("acme"), |sku| {
                (sku.as_str() == "A").then(|| (name("A"), pyg(1)))
            })
            .unwrap_err();
        assert_eq!(refused, OrderError::UnknownSku { sku: sku("GONE") });
    }
}
