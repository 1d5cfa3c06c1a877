//! What the store can say about itself: whether the database answers, whether
//! this release's migrations are applied, and how far the readers that follow
//! the events in commit order (the relay, the rebuild) are held back.
//!
//! Why here and not in the HTTP service: the queries read the store's own
//! tables and functions (`_sqlx_migrations`, `commit_order_lag()` of
//! migration 6), so they change with its migrations; the service asks and
//! reports, and holds no SQL of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::commit_order::{event_placement, EventPlacement};
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommitOrderHoldBack {
    pub events: i64,
    pub seconds: f64,
    /// On a Citus cluster: each node's own (`crate::commit_order`): the
    /// events born there at or above its xmin, and how long the oldest of
    /// them has waited. `events` and `seconds` are then their sum and
    /// their maximum. Empty on a single PostgreSQL.
    pub nodes: Vec<NodeHoldBack>,
}

/// One node's share of a cluster's [`CommitOrderHoldBack`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeHoldBack {
    /// `host:port`, or `coordinator`.
    pub node: String,
    pub events: i64,
    pub seconds: f64,
}

/// How long an answer of [`StoreProbe::health`] is reused.
pub const HEALTH_REUSED_FOR: Duration = Duration::from_secs(1);

/// Longest wait for the database in [`StoreProbe::health`]: past it, the
/// store is reported unreachable (well within a request's time budget).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks the database about the store. Cheap to clone (clones share the
/// cached health).
#[derive(Debug, Clone)]
pub struct StoreProbe {
    pool: PgPool,
    /// The last health and when it was asked: `/readyz` and `/metrics`
    /// answer anyone, so a flood of probes costs the database at most one
    /// probe per [`HEALTH_REUSED_FOR`] (the lock also makes concurrent
    /// probes wait for the one under way instead of each asking).
    cached: Arc<Mutex<Option<(Instant, StoreHealth)>>>,
}

impl StoreProbe {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cached: Arc::default(),
        }
    }

    /// [`Self::probe`], reused for up to [`HEALTH_REUSED_FOR`].
    pub async fn health(&self) -> StoreHealth {
        let mut cached = self.cached.lock().await;
        if let Some((at, health)) = cached.as_ref() {
            if at.elapsed() < HEALTH_REUSED_FOR {
                return health.clone();
            }
        }
        // A database that does not answer must not hold every prober (they
        // wait on the lock) for longer than this.
        let health = tokio::time::timeout(PROBE_TIMEOUT, self.probe())
            .await
            .unwrap_or_else(|_| {
                StoreHealth::Unreachable(format!(
                    "no answer within {} ms",
                    PROBE_TIMEOUT.as_millis()
                ))
            });
        *cached = Some((Instant::now(), health.clone()));
        health
    }

    /// Database, migrations, then the commit-order hold-back, stopping at
    /// the first that is not well (asked now).
    pub async fn probe(&self) -> StoreHealth {
        match self.missing_migrations().await {
            Ok(missing) if missing.len() == up_migrations() => return StoreHealth::NotMigrated,
            Ok(missing) if !missing.is_empty() => {
                return StoreHealth::MigrationsMissing(missing.len())
            }
            Ok(_) => {}
            Err(e) => return StoreHealth::Unreachable(e.to_string()),
        }
        match self.commit_order_hold_back().await {
            Ok(held) => StoreHealth::Ready(held),
            Err(e) => StoreHealth::Unreachable(e.to_string()),
        }
    }

    /// Whether the store is served with rights the service should not have
    /// (superuser, or owner of the event store, who could disable its
    /// append-only trigger). `false` when it cannot tell.
    pub async fn runs_privileged(&self) -> Result<bool, sqlx::Error> {
        let privileged = sqlx::query_file_scalar!("src/sql/runs_privileged.sql")
            .fetch_optional(&self.pool)
            .await?;
        Ok(privileged.flatten().unwrap_or(false))
    }

    /// The migrations of this release that the database has not applied,
    /// as "version description" (none table: all of them).
    pub async fn missing_migrations(&self) -> Result<Vec<String>, sqlx::Error> {
        missing_migrations_on(&self.pool).await
    }

    /// See [`CommitOrderHoldBack`].
    pub async fn commit_order_hold_back(&self) -> Result<CommitOrderHoldBack, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        // On a cluster, each node's xmin is asked through Citus; a role
        // that may not (or a node that does not answer) leaves the figure
        // of the coordinator's snapshot, which is what one node reports.
        if let Ok(EventPlacement::Cluster(nodes)) = event_placement(&mut conn).await {
            let mut held = CommitOrderHoldBack::default();
            for node in nodes {
                let Ok(xmin) = node.xmin else { continue };
                let (from, to) = node.positions();
                let row =
                    sqlx::query_file!("src/sql/held_back_on_node.sql", from, to, xmin.to_string())
                        .fetch_one(&mut *conn)
                        .await?;
                held.events += row.events;
                held.seconds = held.seconds.max(row.seconds);
                held.nodes.push(NodeHoldBack {
                    node: node.node,
                    events: row.events,
                    seconds: row.seconds,
                });
            }
            return Ok(held);
        }
        let row = sqlx::query_file!("src/sql/commit_order_held_back.sql")
            .fetch_one(&mut *conn)
            .await?;
        Ok(CommitOrderHoldBack {
            events: row.events.unwrap_or(0),
            seconds: row.seconds.unwrap_or(0.0),
            nodes: Vec::new(),
        })
    }
}

/// As [`StoreProbe::missing_migrations`], on any connection.
pub(crate) async fn missing_migrations_on<'e>(
    executor: impl sqlx::PgExecutor<'e>,
) -> Result<Vec<String>, sqlx::Error> {
    let applied = match sqlx::query_file_scalar!("src/sql/applied_migrations.sql")
        .fetch_all(executor)
        .await
    {
        Ok(versions) => versions,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect())
}

/// How many migrations this release has (down migrations aside).
pub fn up_migrations() -> usize {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count()
}
