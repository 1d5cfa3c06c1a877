use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{
    check_lines, AbandonCheckout, AbandonedBy, CancelledBy, Checkout, CheckoutAbandoned,
    OrderAction, OrderCancelled, OrderCommand, OrderError, OrderEvent, OrderExpired, OrderLine,
    OrderPlaced, PlaceOrder, SettledCheckout, StockLine,
};
use crate::{
    CheckoutFingerprint, Currency, CustomerId, IdempotencyKey, InvalidValue, Money, OrderId,
    OrderNote, OrderNumber, TenantId,
};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    Paid,
    Shipped,
    Cancelled,
    /// Left unpaid past the shop's deadline: its stock went back.
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        Self::Placed,
        Self::Paid,
        Self::Shipped,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| {
                InvalidValue::new(
                    "status",
                    "expected placed, paid, shipped, cancelled or expired",
                )
            })
    }
}

/// Everything known about a placed order: what the customer sees, plus the
/// fingerprint that tells a replay from a reused key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub id: OrderId,
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub order_number: OrderNumber,
    pub customer: CustomerId,
    pub lines: Vec<OrderLine>,
    pub currency: Currency,
    pub total: i64,
    pub note: Option<OrderNote>,
    pub fingerprint: CheckoutFingerprint,
    pub status: OrderStatus,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The order aggregate. Its stream id is [`OrderId::for_checkout`] of the
/// checkout's tenant and Idempotency-Key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    state: OrderState,
}

/// What the stream's first event made of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum OrderState {
    /// No event: the key has not been used.
    #[default]
    Unused,
    Placed(OrderDetails),
    /// Settled without an order, for good.
    Abandoned(CheckoutAbandoned),
}

impl Order {
    /// Most lines one order may have.
    pub const MAX_LINES: usize = 100;

    /// The order, once placed.
    pub fn details(&self) -> Option<&OrderDetails> {
        match &self.state {
            OrderState::Placed(details) => Some(details),
            _ => None,
        }
    }

    /// What became of the key: placed or abandoned (None: nothing yet).
    pub fn settled(&self) -> Option<SettledCheckout<'_>> {
        match &self.state {
            OrderState::Unused => None,
            OrderState::Placed(details) => Some(SettledCheckout::Placed(details)),
            OrderState::Abandoned(abandoned) => Some(SettledCheckout::Abandoned(abandoned)),
        }
    }

    /// Decides which events a command produces. Pure: no I/O, no clock.
    pub fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::PlaceOrder(place) => self.place(place),
            OrderCommand::AbandonCheckout(abandon) => self.abandon(abandon),
            OrderCommand::MarkPaid { at } => self.mark_paid(at),
            OrderCommand::Ship { at } => self.ship(at),
            OrderCommand::Cancel { by, at } => self.cancel(by, at),
            OrderCommand::Expire { placed_before, at } => self.expire(placed_before, at),
        }
    }

    /// How a stream that has its first event answers a checkout carrying
    /// its key: the order itself when the request is the same (a retry);
    /// `IdempotencyKeyReused` when it is not, or the key is another
    /// customer's; `CheckoutAbandoned` when the key was settled without an
    /// order. Needs no prices: a retry is answered from the stream.
    pub fn check_retry(
        &self,
        tenant: &TenantId,
        checkout: &Checkout,
    ) -> Result<&OrderDetails, OrderError> {
        self.answer_checkout(
            tenant,
            checkout.idempotency_key(),
            checkout.customer(),
            checkout.fingerprint(),
        )
    }

    fn answer_checkout(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        customer: &CustomerId,
        fingerprint: &CheckoutFingerprint,
    ) -> Result<&OrderDetails, OrderError> {
        match &self.state {
            OrderState::Unused => Err(OrderError::OrderNotFound),
            OrderState::Placed(existing)
                if existing.tenant == *tenant
                    && existing.idempotency_key == *key
                    && existing.fingerprint == *fingerprint =>
            {
                Ok(existing)
            }
            OrderState::Abandoned(abandoned)
                if abandoned.tenant == *tenant
                    && abandoned.idempotency_key == *key
                    && abandoned.is_visible_to(customer) =>
            {
                Err(OrderError::CheckoutAbandoned)
            }
            OrderState::Placed(_) | OrderState::Abandoned(_) => {
                Err(OrderError::IdempotencyKeyReused)
            }
        }
    }

    fn place(&self, cmd: PlaceOrder) -> Result<Vec<OrderEvent>, OrderError> {
        if !matches!(self.state, OrderState::Unused) {
            return self
                .answer_checkout(
                    &cmd.tenant,
                    &cmd.idempotency_key,
                    &cmd.customer,
                    &cmd.fingerprint,
                )
                .map(|_| vec![]);
        }
        check_lines(cmd.lines.iter().map(|line| &line.sku)).map_err(|broken| broken.error)?;
        let mut total = Money::zero(cmd.currency);
        let mut lines = Vec::with_capacity(cmd.lines.len());
        for line in cmd.lines {
            if line.unit_price.currency != cmd.currency {
                return Err(OrderError::CurrencyMismatch {
                    sku: line.sku,
                    expected: cmd.currency,
                    found: line.unit_price.currency,
                });
            }
            if line.unit_price.amount < 0 {
                return Err(OrderError::NegativePrice { sku: line.sku });
            }
            let line_total = line.unit_price.checked_mul(line.quantity)?;
            total = total.checked_add(line_total)?;
            lines.push(OrderLine {
                sku: line.sku,
                name: line.name,
                quantity: line.quantity,
                unit_price: line.unit_price.amount,
                line_total: line_total.amount,
            });
        }
        let order_id = OrderId::for_checkout(&cmd.tenant, &cmd.idempotency_key);
        Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
            order_id,
            order_number: OrderNumber::for_order(order_id),
            tenant: cmd.tenant,
            idempotency_key: cmd.idempotency_key,
            customer: cmd.customer,
            lines,
            currency: cmd.currency,
            total: total.amount,
            note: cmd.note.filter(|n| !n.as_str().is_empty()),
            fingerprint: cmd.fingerprint,
            placed_at: store_precision(cmd.placed_at),
            channel: cmd.channel,
        })])
    }

    /// Abandons the key when nothing was placed with it; otherwise nothing
    /// changes (an order is not cancelled by this). A customer may settle
    /// only a key that is theirs, or one staff abandoned; staff any.
    fn abandon(&self, cmd: AbandonCheckout) -> Result<Vec<OrderEvent>, OrderError> {
        let owner = match &self.state {
            OrderState::Unused => {
                return Ok(vec![CheckoutAbandoned {
                    order_id: OrderId::for_checkout(&cmd.tenant, &cmd.idempotency_key),
                    tenant: cmd.tenant,
                    idempotency_key: cmd.idempotency_key,
                    by: cmd.by,
                    abandoned_at: store_precision(cmd.at),
                }
                .into()])
            }
            OrderState::Placed(order)
                if order.tenant == cmd.tenant && order.idempotency_key == cmd.idempotency_key =>
            {
                Some(&order.customer)
            }
            OrderState::Abandoned(abandoned)
                if abandoned.tenant == cmd.tenant
                    && abandoned.idempotency_key == cmd.idempotency_key =>
            {
                abandoned.owner()
            }
            OrderState::Placed(_) | OrderState::Abandoned(_) => {
                return Err(OrderError::NotYourOrder)
            }
        };
        match (&cmd.by, owner) {
            (AbandonedBy::Customer(customer), Some(owner)) if customer != owner => {
                Err(OrderError::NotYourOrder)
            }
            _ => Ok(vec![]),
        }
    }

    fn mark_paid(&self, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let order = self.placed()?;
        if order.paid_at.is_some() {
            return Ok(vec![]);
        }
        match order.status {
            OrderStatus::Placed => Ok(vec![OrderEvent::OrderPaid {
                paid_at: order.next_change_at(at),
            }]),
            from => Err(OrderError::InvalidTransition {
                from,
                action: OrderAction::Pay,
            }),
        }
    }

    fn ship(&self, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let order = self.placed()?;
        if order.shipped_at.is_some() {
            return Ok(vec![]);
        }
        match order.status {
            OrderStatus::Paid => Ok(vec![OrderEvent::OrderShipped {
                shipped_at: order.next_change_at(at),
            }]),
            from => Err(OrderError::InvalidTransition {
                from,
                action: OrderAction::Ship,
            }),
        }
    }

    fn cancel(&self, by: CancelledBy, at: DateTime<Utc>) -> Result<Vec<OrderEvent>, OrderError> {
        let order = self.placed()?;
        if let CancelledBy::Customer(customer) = &by {
            if *customer != order.customer {
                return Err(OrderError::NotYourOrder);
            }
        }
        match (order.status, &by) {
            (OrderStatus::Cancelled, _) => Ok(vec![]),
            (OrderStatus::Placed, _) | (OrderStatus::Paid, CancelledBy::Staff) => {
                Ok(vec![OrderEvent::OrderCancelled(OrderCancelled {
                    cancelled_at: order.next_change_at(at),
                    by,
                    restocked: order.stock_lines(),
                })])
            }
            (from, _) => Err(OrderError::InvalidTransition {
                from,
                action: OrderAction::Cancel,
            }),
        }
    }

    /// Expires the order when it is still unpaid and was placed before
    /// `placed_before`, giving its stock back; otherwise nothing happens
    /// (it was paid, shipped, cancelled or expired meanwhile, or is not
    /// due yet: the sweeper that asked may be late, or one of several).
    fn expire(
        &self,
        placed_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let order = self.placed()?;
        if order.status != OrderStatus::Placed || order.placed_at >= placed_before {
            return Ok(vec![]);
        }
        Ok(vec![OrderEvent::OrderExpired(OrderExpired {
            expired_at: order.next_change_at(at),
            restocked: order.stock_lines(),
        })])
    }

    /// The placed order a transition applies to: an unused or abandoned key
    /// has none.
    fn placed(&self) -> Result<&OrderDetails, OrderError> {
        self.details().ok_or(OrderError::OrderNotFound)
    }
}

impl OrderDetails {
    /// Its lines as stock going back on the shelf, line by line.
    fn stock_lines(&self) -> Vec<StockLine> {
        self.lines
            .iter()
            .map(|l| StockLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect()
    }

    /// The time to record for a change: the clock's, truncated to what the
    /// store keeps, and never before the order's last change (clocks of two
    /// servers may disagree; an order's history must not run backwards).
    fn next_change_at(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        store_precision(at).max(self.updated_at)
    }
}

/// PostgreSQL keeps microseconds; so does every time in an event, so that the
/// aggregate and the read model show the same instants.
fn store_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            OrderEvent::OrderPlaced(placed) => {
                self.state = OrderState::Placed(OrderDetails {
                    id: placed.order_id,
                    tenant: placed.tenant,
                    idempotency_key: placed.idempotency_key,
                    order_number: placed.order_number,
                    customer: placed.customer,
                    lines: placed.lines,
                    currency: placed.currency,
                    total: placed.total,
                    note: placed.note,
                    fingerprint: placed.fingerprint,
                    status: OrderStatus::Placed,
                    placed_at: placed.placed_at,
                    updated_at: placed.placed_at,
                    paid_at: None,
                    shipped_at: None,
                    cancelled_at: None,
                });
            }
            OrderEvent::OrderPaid { paid_at } => {
                if let OrderState::Placed(order) = &mut self.state {
                    order.status = OrderStatus::Paid;
                    order.paid_at = Some(paid_at);
                    order.updated_at = paid_at;
                }
            }
            OrderEvent::OrderShipped { shipped_at } => {
                if let OrderState::Placed(order) = &mut self.state {
                    order.status = OrderStatus::Shipped;
                    order.shipped_at = Some(shipped_at);
                    order.updated_at = shipped_at;
                }
            }
            OrderEvent::OrderCancelled(cancelled) => {
                if let OrderState::Placed(order) = &mut self.state {
                    order.status = OrderStatus::Cancelled;
                    order.cancelled_at = Some(cancelled.cancelled_at);
                    order.updated_at = cancelled.cancelled_at;
                }
            }
            OrderEvent::OrderExpired(expired) => {
                if let OrderState::Placed(order) = &mut self.state {
                    order.status = OrderStatus::Expired;
                    order.updated_at = expired.expired_at;
                }
            }
            OrderEvent::CheckoutAbandoned(abandoned) => {
                self.state = OrderState::Abandoned(abandoned);
            }
        }
    }
}
