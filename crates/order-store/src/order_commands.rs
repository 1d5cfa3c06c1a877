//! Checkout and the order's later transitions.

use chrono::{DateTime, Utc};
use order_domain::order::{CancelledBy, OrderCommand, OrderError, PlaceOrder, PricedLine};
use order_domain::{
    CheckoutFingerprint, CustomerId, IdempotencyKey, Order, OrderId, OrderNote, Quantity, Sku,
};
use sqlx::PgPool;

use crate::catalogue_queries::CatalogueQueries;
use crate::command_context::{Actor, CommandContext};
use crate::error::{StockRejection, StoreError};
use crate::execute::{event_store, execute, execute_loaded, load, EventStoreOf, ExecuteError};
use crate::order_view::OrderView;

/// A checkout as the customer sent it: SKUs and quantities, no prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub idempotency_key: IdempotencyKey,
    pub customer: CustomerId,
    pub lines: Vec<RequestedLine>,
    pub note: Option<OrderNote>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLine {
    pub sku: Sku,
    pub quantity: Quantity,
}

/// Whether a checkout placed the order now or found it placed by an earlier
/// request with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Created,
    Replayed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub order: OrderView,
    pub outcome: CheckoutOutcome,
}

/// The order after a transition, and whether the transition changed it
/// (false: it had already happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTransition {
    pub order: OrderView,
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
    #[error(transparent)]
    Rejected(OrderError),
    #[error(transparent)]
    Store(#[from] StoreError),
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

fn checkout_error(err: ExecuteError<OrderError>) -> CheckoutError {
    match err {
        ExecuteError::Rejected(e) => CheckoutError::Rejected(e),
        ExecuteError::Stock(StockRejection::InsufficientStock {
            sku,
            requested,
            available,
        }) => CheckoutError::OutOfStock {
            sku,
            requested,
            available,
        },
        ExecuteError::Stock(StockRejection::UnknownSku { sku }) => {
            CheckoutError::UnknownSku { sku }
        }
        ExecuteError::Store(e) => CheckoutError::Store(e),
    }
}

/// Places, pays, ships and cancels orders. Each call is one command on one
/// order stream, safe to repeat.
pub struct OrderCommands {
    orders: EventStoreOf<Order>,
    catalogue: CatalogueQueries,
}

impl std::fmt::Debug for OrderCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderCommands").finish_non_exhaustive()
    }
}

impl OrderCommands {
    pub fn new(pool: PgPool) -> Self {
        Self {
            orders: event_store(&pool),
            catalogue: CatalogueQueries::new(pool),
        }
    }

    /// Places the order for (tenant, Idempotency-Key), or returns the order
    /// an earlier request with that key placed.
    ///
    /// A retry is answered from the order's stream alone (one query): the
    /// request's fingerprint decides replay or reused key, so a price change
    /// between a request and its retry changes nothing. A new checkout is
    /// priced from the tenant's catalogue, decided, and appended.
    pub async fn place_order(
        &self,
        context: &CommandContext,
        checkout: Checkout,
    ) -> Result<PlacedOrder, CheckoutError> {
        if checkout.lines.is_empty() {
            return Err(CheckoutError::Rejected(OrderError::NoLines));
        }
        if checkout.lines.len() > Order::MAX_LINES {
            return Err(CheckoutError::Rejected(OrderError::TooManyLines {
                count: checkout.lines.len(),
                max: Order::MAX_LINES,
            }));
        }
        let id = OrderId::for_checkout(&context.tenant, &checkout.idempotency_key);
        // A retry is answered from the stream alone: no pricing, no decision.
        let loaded = load(&self.orders, &id.to_string())
            .await
            .map_err(checkout_error)?;
        if loaded.aggregate.details().is_some() {
            let fingerprint = CheckoutFingerprint::of(
                &checkout.customer,
                checkout.lines.iter().map(|l| (&l.sku, l.quantity)),
                checkout.note.as_ref(),
            );
            let order = loaded
                .aggregate
                .check_retry(&context.tenant, &checkout.idempotency_key, &fingerprint)
                .map_err(CheckoutError::Rejected)?;
            return Ok(PlacedOrder {
                order: OrderView::from(order),
                outcome: CheckoutOutcome::Replayed,
            });
        }
        let skus: Vec<&Sku> = checkout.lines.iter().map(|l| &l.sku).collect();
        let prices = self.catalogue.prices(&context.tenant, &skus).await?;
        let mut lines = Vec::with_capacity(checkout.lines.len());
        for requested in &checkout.lines {
            let price = prices
                .get(&requested.sku)
                .ok_or_else(|| CheckoutError::UnknownSku {
                    sku: requested.sku.clone(),
                })?;
            lines.push(PricedLine {
                sku: requested.sku.clone(),
                name: price.name.clone(),
                quantity: requested.quantity,
                unit_price: price.unit_price,
            });
        }
        let currency = lines
            .first()
            .map(|l| l.unit_price.currency)
            .ok_or(CheckoutError::Rejected(OrderError::NoLines))?;
        let command = OrderCommand::PlaceOrder(PlaceOrder::new(
            context.tenant.clone(),
            checkout.idempotency_key,
            checkout.customer,
            currency,
            lines,
            checkout.note,
            checkout.at,
        ));
        let executed = execute_loaded(
            "checkout",
            &self.orders,
            &id.to_string(),
            Some(loaded),
            &command,
            &context.metadata(),
            |_| Ok(()),
        )
        .await
        .map_err(checkout_error)?;
        let order = executed
            .aggregate
            .details()
            .map(OrderView::from)
            .ok_or_else(|| StoreError::Internal("a placed order has no details".into()))?;
        Ok(PlacedOrder {
            order,
            outcome: if executed.changed {
                CheckoutOutcome::Created
            } else {
                CheckoutOutcome::Replayed
            },
        })
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
            Actor::Staff(_) => CancelledBy::Staff,
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

    async fn transition(
        &self,
        command_name: &'static str,
        context: &CommandContext,
        order: OrderId,
        command: OrderCommand,
    ) -> Result<OrderTransition, OrderCommandError> {
        let tenant = &context.tenant;
        // Another tenant's order is reported exactly like a missing one.
        let same_tenant = |o: &Order| match o.details() {
            Some(details) if details.tenant == *tenant => Ok(()),
            _ => Err(OrderError::OrderNotFound),
        };
        let executed = execute(
            command_name,
            &self.orders,
            &order.to_string(),
            &command,
            &context.metadata(),
            same_tenant,
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
            .map(OrderView::from)
            .ok_or(OrderCommandError::NotFound)?;
        Ok(OrderTransition {
            order,
            changed: executed.changed,
        })
    }
}
