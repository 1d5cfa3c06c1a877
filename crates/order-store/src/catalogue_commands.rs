//! Defining products and moving stock.

use chrono::{DateTime, Utc};
use order_domain::product::{DefineProduct, ProductCommand, ProductError};
use order_domain::stock_adjustment::{AdjustStock, StockAdjustmentCommand, StockAdjustmentError};
use order_domain::{
    IdempotencyKey, Money, Product, ProductId, ProductName, Sku, StockAdjustment,
    StockAdjustmentId, StockDelta, StockReason,
};
use sqlx::PgPool;

use crate::catalogue_queries::CatalogueQueries;
use crate::command_context::CommandContext;
use crate::error::{StockRejection, StoreError};
use crate::event_store::{EventStore, Stream};
use crate::execute::{execute, ExecuteError};
use crate::group_commit::GroupCommit;
use crate::order_commands::CheckoutOutcome;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("unknown SKU {sku}")]
    UnknownSku { sku: Sku },
    #[error("stock of {sku} cannot go below zero: removing {requested}, on hand {available}")]
    InsufficientStock {
        sku: Sku,
        requested: i64,
        available: i64,
    },
    #[error(transparent)]
    Product(ProductError),
    #[error(transparent)]
    Adjustment(StockAdjustmentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stock movement's result: the product as it stands, and whether this
/// request booked the movement or found it booked under the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMovement {
    pub product: order_api::Product,
    pub outcome: CheckoutOutcome,
}

/// Staff's catalogue and stock commands.
pub struct CatalogueCommands {
    store: EventStore,
    queries: CatalogueQueries,
}

impl std::fmt::Debug for CatalogueCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogueCommands").finish_non_exhaustive()
    }
}

impl CatalogueCommands {
    pub fn new(pool: PgPool) -> Self {
        Self {
            store: EventStore::new(pool.clone()),
            queries: CatalogueQueries::new(pool),
        }
    }

    /// The same commands, their appends stored through `writers`.
    pub fn with_group_commit(self, writers: GroupCommit) -> Self {
        Self {
            store: self.store.with_group_commit(writers),
            ..self
        }
    }

    /// Creates the product or replaces its name and price (orders already
    /// placed keep their prices). Repeating a definition changes nothing.
    pub async fn define_product(
        &self,
        context: &CommandContext,
        sku: Sku,
        name: ProductName,
        unit_price: Money,
        at: DateTime<Utc>,
    ) -> Result<order_api::Product, CatalogueError> {
        let id = ProductId::new(&context.tenant, &sku);
        let command = ProductCommand::DefineProduct(DefineProduct {
            tenant: context.tenant.clone(),
            sku: sku.clone(),
            name,
            unit_price,
            at,
        });
        let id = id.to_string();
        let stream = self.store.load::<Product>(&context.tenant, &id).await?;
        execute(
            &self.store,
            "define_product",
            &context.tenant,
            &id,
            stream,
            &command,
            &context.metadata()?,
        )
        .await
        .map_err(|e| match e {
            ExecuteError::Rejected(e) => CatalogueError::Product(e),
            ExecuteError::Stock(r) => stock_error(r),
            ExecuteError::Store(e) => CatalogueError::Store(e),
        })?;
        self.current(context, sku).await
    }

    /// Books a stock movement once per (tenant, Idempotency-Key). The
    /// inventory refuses a movement that would take stock below zero.
    pub async fn adjust_stock(
        &self,
        context: &CommandContext,
        idempotency_key: IdempotencyKey,
        sku: Sku,
        delta: StockDelta,
        reason: StockReason,
        at: DateTime<Utc>,
    ) -> Result<StockMovement, CatalogueError> {
        let id = StockAdjustmentId::for_key(&context.tenant, &idempotency_key);
        let command = StockAdjustmentCommand::AdjustStock(AdjustStock {
            tenant: context.tenant.clone(),
            idempotency_key,
            sku: sku.clone(),
            delta,
            reason,
            at,
        });
        // Keyed by (tenant, key): assumed new; a retry finds its stream in
        // the same round trip and becomes a replay.
        let executed = execute(
            &self.store,
            "adjust_stock",
            &context.tenant,
            &id.to_string(),
            Stream::<StockAdjustment>::empty(),
            &command,
            &context.metadata()?,
        )
        .await
        .map_err(|e| match e {
            ExecuteError::Rejected(e) => CatalogueError::Adjustment(e),
            ExecuteError::Stock(r) => stock_error(r),
            ExecuteError::Store(e) => CatalogueError::Store(e),
        })?;
        Ok(StockMovement {
            product: self.current(context, sku).await?,
            outcome: if executed.changed {
                CheckoutOutcome::Created
            } else {
                CheckoutOutcome::Replayed
            },
        })
    }

    async fn current(
        &self,
        context: &CommandContext,
        sku: Sku,
    ) -> Result<order_api::Product, CatalogueError> {
        self.queries
            .find_product(&context.tenant, &sku)
            .await?
            .ok_or(CatalogueError::UnknownSku { sku })
    }
}

fn stock_error(rejection: StockRejection) -> CatalogueError {
    match rejection {
        StockRejection::UnknownSku { sku } => CatalogueError::UnknownSku { sku },
        StockRejection::InsufficientStock {
            sku,
            requested,
            available,
        } => CatalogueError::InsufficientStock {
            sku,
            requested,
            available,
        },
    }
}
