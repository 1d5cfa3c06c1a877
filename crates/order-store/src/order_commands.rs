//! Checkout, settling a checkout's key, and the order's later transitions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use order_api::CheckoutStatus;
use order_domain::order::{
    AbandonCheckout, AbandonedBy, CancelledBy, Checkout, OrderCommand, OrderError,
};
use order_domain::{IdempotencyKey, Order, OrderId, Sku, TenantId};
use sqlx::PgPool;

use crate::catalogue_queries::{CataloguePrice, CatalogueQueries};
use crate::command_context::{Actor, CommandContext};
use crate::error::StoreError;
use crate::event_store::{AbandonmentBound, Append, Appended, EventStore, Refusal, Stream};
use crate::execute::{count_rerun, decide, execute, ExecuteError, CONFLICT_ATTEMPTS};
use crate::group_commit::GroupCommit;
use crate::known_orders::KnownOrders;
use crate::order_view::{checkout_status_of, order_of};
use crate::price_cache::PriceCache;
use crate::unpaid_limit::{UnpaidLimit, UnpaidRefusal};

/// Whether a checkout placed the order now or found it placed by an earlier
/// request with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Created,
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub order: order_api::Order,
    pub outcome: CheckoutOutcome,
}

/// The order after a transition, and whether the transition changed it
/// (false: it had already happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTransition {
    pub order: order_api::Order,
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("unknown SKU {sku}")]
    UnknownSku { sku: Sku },
    #[error("not enough stock of {sku}: requested {requested}, available {available}")]
    OutOfStock {
        sku: Sku,
        requested: i64,
        available: i64,
    },
    /// The order would take the customer's unpaid orders over a bound.
    #[error("your unpaid orders would exceed the most {} allowed ({}; held now: {}): pay or cancel one first", .0.bound, .0.most, .0.held)]
    UnpaidLimit(UnpaidRefusal),
    #[error(transparent)]
    Rejected(OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an abandon found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Placed (with the order) or abandoned.
    pub checkout: CheckoutStatus,
    /// True when this call recorded the abandonment.
    pub abandoned_now: bool,
}

impl Settlement {
    fn of(key: &IdempotencyKey, order: &Order, abandoned_now: bool) -> Result<Self, AbandonError> {
        let checkout = checkout_status_of(key, order)
            .ok_or_else(|| StoreError::Internal("a settled checkout has no first event".into()))?;
        Ok(Self {
            checkout,
            abandoned_now,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AbandonError {
    /// The key is another customer's (or another tenant's): as if nothing
    /// were recorded for it.
    #[error("nothing is recorded for this Idempotency-Key")]
    NotFound,
    #[error("at most {most} abandoned checkouts per customer in {}; retry in {} s", humanize(*per), retry_after.as_secs())]
    Limited {
        most: u32,
        per: Duration,
        retry_after: Duration,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `60 s` or `1 min`-style text of a window.
fn humanize(window: Duration) -> String {
    match window.as_secs() {
        60 => "a minute".to_owned(),
        seconds if seconds % 60 == 0 => format!("{} minutes", seconds / 60),
        seconds => format!("{seconds} seconds"),
    }
}

/// How many checkouts one customer may abandon in a window (the contract's
/// default: 60 per minute). Every abandonment is an event kept for ever:
/// the bound keeps one customer from filling the store with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbandonmentLimit {
    pub most: u32,
    pub per: Duration,
}

impl Default for AbandonmentLimit {
    fn default() -> Self {
        Self {
            most: 60,
            per: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrderCommandError {
    /// No such order in this tenant, or not one of this customer's.
    #[error("no such order")]
    NotFound,
    #[error(transparent)]
    Rejected(OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The checkout as the aggregate's command, its lines priced with `prices`
/// (in the order of the lines).
fn place_order_command(
    context: &CommandContext,
    checkout: &Checkout,
    prices: &[CataloguePrice],
) -> Result<OrderCommand, CheckoutError> {
    let mut prices = prices.iter();
    checkout
        .priced(context.tenant.clone(), |_| {
            prices
                .next()
                .map(|price| (price.name.clone(), price.unit_price))
        })
        .map(OrderCommand::PlaceOrder)
        .map_err(|refused| match refused {
            OrderError::UnknownSku { sku } => CheckoutError::UnknownSku { sku },
            other => CheckoutError::Rejected(other),
        })
}

/// Places, pays, ships and cancels orders. Each call is one command on one
/// order stream, safe to repeat.
pub struct OrderCommands {
    store: EventStore,
    catalogue: CatalogueQueries,
    prices: PriceCache,
    known: KnownOrders,
    abandonment_limit: AbandonmentLimit,
}

impl std::fmt::Debug for OrderCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderCommands").finish_non_exhaustive()
    }
}

impl OrderCommands {
    /// Commands with no bound on unpaid orders: the service sets one
    /// ([`Self::with_unpaid_limit`]; its configuration's default is
    /// [`UnpaidLimit::DEFAULT`]).
    pub fn new(pool: PgPool) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
            catalogue: CatalogueQueries::new(pool),
            prices: PriceCache::default(),
            known: KnownOrders::default(),
            abandonment_limit: AbandonmentLimit::default(),
        }
    }

    /// The same commands, their appends stored through `writers` (a
    /// checkout's, a payment's...; an abandon is stored alone: it takes a
    /// per-customer lock and is rare).
    pub fn with_group_commit(self, writers: GroupCommit) -> Self {
        Self {
            store: self.store.with_group_commit(writers),
            ..self
        }
    }

    /// The same commands, holding each customer's unpaid orders to `limit`.
    pub fn with_unpaid_limit(self, limit: UnpaidLimit) -> Self {
        Self {
            store: self.store.with_unpaid_limit(limit),
            ..self
        }
    }

    /// The same commands, with this bound on a customer's abandonments.
    pub fn with_abandonment_limit(self, abandonment_limit: AbandonmentLimit) -> Self {
        Self {
            abandonment_limit,
            ..self
        }
    }

    /// Places the order for (tenant, Idempotency-Key), or returns the order
    /// an earlier request with that key placed.
    ///
    /// One round trip in the common cases. The checkout is priced from this
    /// process's catalogue cache and appended on the assumption that the
    /// key is new; the store checks both in the same statement. A retry
    /// finds the stream there and gets its events back (then it is answered
    /// from the stream alone: the request's fingerprint decides replay or
    /// reused key, so a price change between a request and its retry
    /// changes nothing). A stale price is refused and the checkout re-priced.
    pub async fn place_order(
        &self,
        context: &CommandContext,
        checkout: Checkout,
    ) -> Result<PlacedOrder, CheckoutError> {
        let tenant = &context.tenant;
        let order_id = OrderId::for_checkout(tenant, checkout.idempotency_key());
        let id = order_id.to_string();
        let skus: Vec<&Sku> = checkout.lines().iter().map(|l| &l.sku).collect();
        let metadata = context.metadata()?;
        // A key seen here before is most likely a retry: read it (see
        // known_orders.rs). Anything else is assumed new.
        let mut loaded = self.known.contains(order_id.as_uuid());
        let mut stream = if loaded {
            self.store.load(tenant, &id).await?
        } else {
            Stream::<Order>::empty()
        };
        for _ in 0..CONFLICT_ATTEMPTS {
            if stream.aggregate.settled().is_some() {
                self.known.insert(*order_id.as_uuid());
                let order = stream
                    .aggregate
                    .check_retry(tenant, &checkout)
                    .map_err(CheckoutError::Rejected)?;
                return Ok(PlacedOrder {
                    order: order_of(order),
                    outcome: CheckoutOutcome::Replayed,
                });
            }
            let prices = match self.prices(tenant, &skus).await? {
                Ok(prices) => prices,
                // A retry of a placed order is answered by its stream (its
                // products cannot have gone): look before saying "unknown".
                Err(_) if !loaded => {
                    stream = self.store.load(tenant, &id).await?;
                    loaded = true;
                    continue;
                }
                Err(sku) => return Err(CheckoutError::UnknownSku { sku }),
            };
            let command = place_order_command(context, &checkout, &prices)?;
            let (after, events) = decide(&stream.aggregate, command)
                .await
                .map_err(CheckoutError::Rejected)?;
            let priced: Vec<(&Sku, &CataloguePrice)> =
                skus.iter().copied().zip(prices.iter()).collect();
            let append = Append::<Order> {
                tenant,
                id: &id,
                expected: stream.version,
                events: &events,
                metadata: &metadata,
                prices: &priced,
            };
            match self.store.append(&append).await? {
                Appended::Stored => {
                    self.known.insert(*order_id.as_uuid());
                    let order = after.details().map(order_of).ok_or_else(|| {
                        StoreError::Internal("a placed order has no details".into())
                    })?;
                    return Ok(PlacedOrder {
                        order,
                        outcome: CheckoutOutcome::Created,
                    });
                }
                Appended::Moved(newer) => stream.apply(newer),
                Appended::Conflict => {
                    stream = self.store.load(tenant, &id).await?;
                    loaded = true;
                }
                Appended::Refused(Refusal::Repriced(_) | Refusal::UnknownSku(_)) => {
                    self.prices.forget(tenant, &skus);
                }
                Appended::Refused(Refusal::Short {
                    sku,
                    requested,
                    available,
                }) => {
                    return Err(CheckoutError::OutOfStock {
                        sku,
                        requested,
                        available,
                    })
                }
                Appended::Unpaid(refusal) => return Err(CheckoutError::UnpaidLimit(refusal)),
                Appended::Limited(_) => {
                    return Err(StoreError::Internal("a checkout has no bound".into()).into())
                }
            }
            count_rerun("checkout", Order::TYPE, &id);
        }
        Err(CheckoutError::Store(StoreError::ContendedStream {
            stream: format!("{}/{id}", Order::TYPE),
            attempts: CONFLICT_ATTEMPTS,
        }))
    }

    /// The catalogue's names and prices of `skus`, in their order, from the
    /// cache or (for those it lacks) the database; `Err` names the first
    /// SKU the catalogue does not have.
    async fn prices(
        &self,
        tenant: &TenantId,
        skus: &[&Sku],
    ) -> Result<Result<Vec<CataloguePrice>, Sku>, StoreError> {
        let mut cached = self.prices.lookup(tenant, skus);
        let missing: Vec<&Sku> = skus
            .iter()
            .zip(&cached)
            .filter(|(_, price)| price.is_none())
            .map(|(sku, _)| *sku)
            .collect();
        if !missing.is_empty() {
            let mut found = self.catalogue.prices(tenant, &missing).await?;
            for (sku, price) in skus.iter().zip(cached.iter_mut()) {
                if price.is_none() {
                    *price = found.remove(*sku);
                }
            }
            self.prices.remember(
                tenant,
                skus.iter()
                    .zip(&cached)
                    .filter_map(|(sku, price)| Some(((*sku).clone(), price.clone()?))),
            );
        }
        Ok(skus
            .iter()
            .zip(cached)
            .map(|(sku, price)| price.ok_or_else(|| (*sku).clone()))
            .collect())
    }

    /// Settles the checkout of (tenant, `key`) for good: its order when one
    /// was placed (nothing changes), else the abandonment, recorded now as
    /// the first event of the order's stream, so that no checkout with the
    /// key can ever place one (see `order_domain::order::abandonment`).
    ///
    /// One round trip when the key is new. A customer may settle their own
    /// keys and keys staff abandoned, and records at most
    /// [`AbandonmentLimit`] abandonments; staff settle any key of the tenant.
    pub async fn abandon_checkout(
        &self,
        context: &CommandContext,
        key: &IdempotencyKey,
        at: DateTime<Utc>,
    ) -> Result<Settlement, AbandonError> {
        let tenant = &context.tenant;
        let order_id = OrderId::for_checkout(tenant, key);
        let id = order_id.to_string();
        let (by, bound) = match &context.actor {
            Actor::Customer(customer) => (
                AbandonedBy::Customer(customer.clone()),
                Some(AbandonmentBound {
                    customer,
                    at,
                    most: self.abandonment_limit.most,
                    window: self.abandonment_limit.per,
                }),
            ),
            Actor::Staff(_) | Actor::System(_) => (AbandonedBy::Staff, None),
        };
        let command = OrderCommand::AbandonCheckout(AbandonCheckout {
            tenant: tenant.clone(),
            idempotency_key: key.clone(),
            by,
            at,
        });
        let metadata = context.metadata()?;
        let mut stream = if self.known.contains(order_id.as_uuid()) {
            self.store.load(tenant, &id).await?
        } else {
            Stream::<Order>::empty()
        };
        for _ in 0..CONFLICT_ATTEMPTS {
            let (after, events) = decide(&stream.aggregate, command.clone()).await.map_err(
                |refused| match refused {
                    OrderError::NotYourOrder => AbandonError::NotFound,
                    other => AbandonError::Store(StoreError::Internal(other.to_string())),
                },
            )?;
            if events.is_empty() {
                self.known.insert(*order_id.as_uuid());
                return Settlement::of(key, &after, false);
            }
            let append = Append::<Order> {
                tenant,
                id: &id,
                expected: stream.version,
                events: &events,
                metadata: &metadata,
                prices: &[],
            };
            match self.store.abandon(&append, bound).await? {
                Appended::Stored => {
                    self.known.insert(*order_id.as_uuid());
                    return Settlement::of(key, &after, true);
                }
                Appended::Moved(newer) => stream.apply(newer),
                Appended::Conflict => stream = self.store.load(tenant, &id).await?,
                Appended::Limited(limited) => {
                    // Within the window: the oldest abandonment counted may
                    // carry a later clock reading than this request's.
                    return Err(AbandonError::Limited {
                        most: limited.most,
                        per: self.abandonment_limit.per,
                        retry_after: limited.retry_after.min(self.abandonment_limit.per),
                    });
                }
                Appended::Refused(refusal) => {
                    return Err(AbandonError::Store(StoreError::Internal(format!(
                        "the inventory refused an abandonment: {refusal:?}"
                    ))))
                }
                Appended::Unpaid(refusal) => {
                    return Err(AbandonError::Store(StoreError::Internal(format!(
                        "a bound on unpaid orders refused an abandonment: {refusal:?}"
                    ))))
                }
            }
            count_rerun("abandon", Order::TYPE, &id);
        }
        Err(AbandonError::Store(StoreError::ContendedStream {
            stream: format!("{}/{id}", Order::TYPE),
            attempts: CONFLICT_ATTEMPTS,
        }))
    }

    /// Cancels the order and gives its stock back, once. Customers may cancel
    /// their own placed orders; staff any placed or paid order of the tenant.
    pub async fn cancel(
        &self,
        context: &CommandContext,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<OrderTransition, OrderCommandError> {
        let by = match &context.actor {
            Actor::Customer(id) => CancelledBy::Customer(id.clone()),
            Actor::Staff(_) | Actor::System(_) => CancelledBy::Staff,
        };
        self.transition("cancel", context, order, OrderCommand::Cancel { by, at })
            .await
    }

    /// Records the payment of a placed order (staff).
    pub async fn mark_paid(
        &self,
        context: &CommandContext,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<OrderTransition, OrderCommandError> {
        self.transition("pay", context, order, OrderCommand::MarkPaid { at })
            .await
    }

    /// Records the shipment of a paid order (staff).
    pub async fn ship(
        &self,
        context: &CommandContext,
        order: OrderId,
        at: DateTime<Utc>,
    ) -> Result<OrderTransition, OrderCommandError> {
        self.transition("ship", context, order, OrderCommand::Ship { at })
            .await
    }

    /// Expires the order if it is still unpaid and was placed before
    /// `placed_before`, giving its stock back, once. `changed` is false
    /// when nothing happened: paid, cancelled or expired meanwhile (by
    /// another replica's sweeper, say), or not due.
    pub async fn expire(
        &self,
        context: &CommandContext,
        order: OrderId,
        placed_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<OrderTransition, OrderCommandError> {
        self.transition(
            "expire",
            context,
            order,
            OrderCommand::Expire { placed_before, at },
        )
        .await
    }

    async fn transition(
        &self,
        command_name: &'static str,
        context: &CommandContext,
        order: OrderId,
        command: OrderCommand,
    ) -> Result<OrderTransition, OrderCommandError> {
        let tenant = &context.tenant;
        let id = order.to_string();
        // Read by tenant: another tenant's order is an empty stream here,
        // reported exactly like a missing one.
        let stream = self.store.load::<Order>(tenant, &id).await?;
        let executed = execute(
            &self.store,
            command_name,
            tenant,
            &id,
            stream,
            &command,
            &context.metadata()?,
        )
        .await
        .map_err(|e| match e {
            ExecuteError::Rejected(OrderError::OrderNotFound | OrderError::NotYourOrder) => {
                OrderCommandError::NotFound
            }
            ExecuteError::Rejected(e) => OrderCommandError::Rejected(e),
            ExecuteError::Stock(rejection) => {
                OrderCommandError::Store(StoreError::ReadModelOutOfStep {
                    what: rejection.to_string(),
                })
            }
            ExecuteError::Store(e) => OrderCommandError::Store(e),
        })?;
        let order = executed
            .aggregate
            .details()
            .map(order_of)
            .ok_or(OrderCommandError::NotFound)?;
        Ok(OrderTransition {
            order,
            changed: executed.changed,
        })
    }
}
