//! Expiry of unpaid orders: the sweeper.
//!
//! An order left `placed` (unpaid) longer than the shop allows holds stock
//! nobody may buy. Every replica of the service runs this sweeper: it asks
//! the read model for the oldest unpaid orders placed before the deadline
//! and sends each the `Expire` command, which the order decides like any
//! other (it may have been paid meanwhile). Several sweepers may pick the
//! same order at once: the event store lets one `OrderExpired` into the
//! stream and the others find the order expired, so each order expires
//! exactly once and its stock (restored by the projection of that one
//! event) comes back exactly once. No lease, no leader.

use std::time::Duration;

use chrono::{DateTime, Utc};
use order_domain::{OrderId, TenantId};
use sqlx::PgPool;

use crate::command_context::{Actor, CommandContext};
use crate::error::StoreError;
use crate::order_commands::{OrderCommandError, OrderCommands};

/// How long an order may stay unpaid, and how the sweeper works through
/// the orders past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpaidExpiry {
    /// An order placed longer ago than this and still unpaid expires.
    pub after: Duration,
    /// How often each replica looks for orders past the deadline.
    pub every: Duration,
    /// Most orders one look expires (the next look takes the rest).
    pub batch: u32,
}

impl Default for UnpaidExpiry {
    /// Half an hour to pay (a checkout's stock is held that long), looked
    /// at every 15 seconds, 200 orders a look.
    fn default() -> Self {
        Self {
            after: Duration::from_secs(30 * 60),
            every: Duration::from_secs(15),
            batch: 200,
        }
    }
}

/// What one look did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Unpaid orders found past the deadline.
    pub due: usize,
    /// Of those, expired by this look (the others were paid, cancelled or
    /// expired by another replica meanwhile).
    pub expired: usize,
}

/// The job's name in every event it writes (`actor: system:unpaid-expiry`).
const JOB: &str = "unpaid-expiry";

/// Expires the unpaid orders placed before `now - expiry.after`, oldest
/// first, at most `expiry.batch` of them.
pub async fn expire_unpaid_orders(
    pool: &PgPool,
    orders: &OrderCommands,
    expiry: &UnpaidExpiry,
    now: DateTime<Utc>,
) -> Result<Sweep, StoreError> {
    let after = chrono::Duration::from_std(expiry.after)
        .map_err(|_| StoreError::Internal("the unpaid expiry is too long".into()))?;
    let placed_before = now - after;
    let due = sqlx::query_file!(
        "src/sql/unpaid_orders_due.sql",
        placed_before,
        i64::from(expiry.batch)
    )
    .fetch_all(pool)
    .await?;
    let mut sweep = Sweep {
        due: due.len(),
        expired: 0,
    };
    for row in due {
        let tenant = TenantId::try_from(row.tenant_id.as_str()).map_err(|e| {
            StoreError::Internal(format!("store_orders holds a bad tenant id: {e}"))
        })?;
        let context = CommandContext {
            tenant,
            actor: Actor::System(JOB),
            request_id: None,
        };
        match orders
            .expire(&context, OrderId::from(row.id), placed_before, now)
            .await
        {
            Ok(transition) if transition.changed => {
                sweep.expired += 1;
                metrics::counter!("orders_expired_total").increment(1);
            }
            Ok(_) | Err(OrderCommandError::NotFound) => {}
            Err(OrderCommandError::Rejected(e)) => {
                return Err(StoreError::Internal(format!(
                    "expiring order {}: {e}",
                    row.id
                )))
            }
            Err(OrderCommandError::Store(e)) => return Err(e),
        }
    }
    Ok(sweep)
}

/// Runs [`expire_unpaid_orders`] every `expiry.every`, for ever (abort the
/// task to stop it). Errors are logged and the next look tries again.
pub async fn run_unpaid_expiry(
    pool: PgPool,
    orders: std::sync::Arc<OrderCommands>,
    expiry: UnpaidExpiry,
) {
    let mut ticks = tokio::time::interval(expiry.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match expire_unpaid_orders(&pool, &orders, &expiry, Utc::now()).await {
            Ok(sweep) if sweep.expired > 0 => {
                tracing::info!(
                    due = sweep.due,
                    expired = sweep.expired,
                    "expired unpaid orders"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the unpaid-order sweeper failed; trying again"),
        }
    }
}
