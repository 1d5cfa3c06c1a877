//! What the store can say about itself: whether the database answers, whether
//! this release's migrations are applied, and how far the readers that follow
//! the events in commit order (the relay, the rebuild) are held back.
//!
//! Why here and not in the HTTP service: the queries read the store's own
//! tables and functions (`_sqlx_migrations`, `commit_order_lag()` of
//! migration 6), so they change with its migrations; the service asks and
//! reports, and holds no SQL of its own.

use sqlx::PgPool;

use crate::MIGRATOR;

/// The store's state, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreHealth {
    /// The database did not answer (or failed): why.
    Unreachable(String),
    /// The database answers without the migrations table.
    NotMigrated,
    /// The database answers; this many of this release's migrations are
    /// missing.
    MigrationsMissing(usize),
    /// Ready to serve.
    Ready(CommitOrderHoldBack),
}

/// Committed events a commit-order reader cannot read yet (from
/// transactions at or above the snapshot's xmin), and how long the oldest
/// transaction holding them back has run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CommitOrderHoldBack {
    pub events: i64,
    pub seconds: f64,
}

/// Asks the database about the store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreProbe {
    pool: PgPool,
}

impl StoreProbe {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Database, migrations, then the commit-order hold-back, stopping at
    /// the first that is not well.
    pub async fn health(&self) -> StoreHealth {
        let applied = sqlx::query_file_scalar!("src/sql/applied_migrations.sql")
            .fetch_all(&self.pool)
            .await;
        let applied = match applied {
            Ok(versions) => versions,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
                return StoreHealth::NotMigrated
            }
            Err(e) => return StoreHealth::Unreachable(e.to_string()),
        };
        let missing = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .filter(|m| !applied.contains(&m.version))
            .count();
        if missing > 0 {
            return StoreHealth::MigrationsMissing(missing);
        }
        match self.commit_order_hold_back().await {
            Ok(held) => StoreHealth::Ready(held),
            Err(e) => StoreHealth::Unreachable(e.to_string()),
        }
    }

    /// See [`CommitOrderHoldBack`].
    pub async fn commit_order_hold_back(&self) -> Result<CommitOrderHoldBack, sqlx::Error> {
        let row = sqlx::query_file!("src/sql/commit_order_held_back.sql")
            .fetch_one(&self.pool)
            .await?;
        Ok(CommitOrderHoldBack {
            events: row.events.unwrap_or(0),
            seconds: row.seconds.unwrap_or(0.0),
        })
    }
}
