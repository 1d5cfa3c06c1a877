//! The event repository: postgres-es reads the streams; appends are ours.

use std::time::Duration;

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use order_domain::TenantId;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

use crate::error::{is_transient, is_unavailable, StockRejection, StoreError};
use crate::projection::rows::ProjectionArrays;
use crate::projection::{projection_error, ReadModelChanges};
use crate::shop_event::{RecordedEvent, ShopEvent};

/// The metadata key every appended event must carry.
pub const TENANT_METADATA_KEY: &str = "tenant_id";

/// How often a transaction that PostgreSQL aborted as a deadlock or a
/// serialization failure is run again before the error reaches the caller.
const TRANSIENT_ATTEMPTS: u32 = 5;

/// A `PersistedEventRepository` whose `persist` appends the events **and**
/// applies the inline projections (`store_orders`, `store_order_items`,
/// `inventory`) in one transaction: the events and the read model commit
/// together or not at all.
///
/// The transaction is one statement, `SELECT * FROM append_events(...)` (see
/// migration `..._projection_functions.sql`): one round trip. In it, in this
/// order (the fixed order keeps concurrent appends and the rebuild's cut-over
/// free of deadlocks):
/// 1. the stock guard locks the inventory rows the events touch (sorted by
///    tenant and SKU) and refuses a change that would take stock below zero;
/// 2. the events are inserted; the primary key (stream, sequence) and the
///    unique (tenant, kind, Idempotency-Key) index turn a concurrent
///    duplicate into an optimistic-lock conflict;
/// 3. `project_read_model` writes the rows of the fold computed here.
///
/// Deadlocks and serialization failures are retried here, transparently.
///
/// Reads go to postgres-es' `PostgresEventRepository`. No snapshots: cqrs-es
/// 0.5's snapshot stores apply each event twice.
pub struct ProjectingEventRepository {
    pool: PgPool,
    reader: PostgresEventRepository,
}

impl std::fmt::Debug for ProjectingEventRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectingEventRepository")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// Why an append did not happen. Travels through cqrs-es inside a
/// `PersistenceError` and is recovered by downcasting (see `execute.rs`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error("a concurrent command appended to this stream first")]
    Conflict,
    #[error(transparent)]
    Stock(StockRejection),
    #[error(transparent)]
    Store(StoreError),
}

impl From<AppendError> for PersistenceError {
    fn from(err: AppendError) -> Self {
        match err {
            AppendError::Conflict => Self::OptimisticLockError,
            AppendError::Store(store) if store.is_unavailable() => {
                Self::ConnectionError(Box::new(AppendError::Store(store)))
            }
            other => Self::UnknownError(Box::new(other)),
        }
    }
}

impl ProjectingEventRepository {
    pub fn new(pool: PgPool) -> Self {
        Self {
            reader: PostgresEventRepository::new(pool.clone()),
            pool,
        }
    }

    /// Appends events of one stream and projects them, in one transaction.
    pub(crate) async fn append(&self, events: &[SerializedEvent]) -> Result<(), AppendError> {
        if events.is_empty() {
            return Ok(());
        }
        let batch = EventBatch::new(events)?;
        let changes = ReadModelChanges::from_events(&batch.recorded).map_err(|e| {
            AppendError::Store(StoreError::Internal(format!("cannot project events: {e}")))
        })?;
        let mut attempt = 1;
        loop {
            match self.append_once(&batch, &changes).await {
                Err(AppendError::Store(StoreError::Database(err)))
                    if is_transient(&err) && attempt < TRANSIENT_ATTEMPTS =>
                {
                    metrics::counter!("orders_transient_retries_total").increment(1);
                    tracing::debug!(attempt, error = %err, "retrying a deadlocked append");
                    let pause = rand::random_range(1..=10 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn append_once(
        &self,
        batch: &EventBatch<'_>,
        changes: &ReadModelChanges,
    ) -> Result<(), AppendError> {
        let arrays = ProjectionArrays::from(changes);
        let shortage: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT short_sku, requested, available FROM append_events($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(batch.new_events())
        .bind(changes.stock_guard())
        .bind(arrays.products)
        .bind(arrays.stock)
        .bind(arrays.orders)
        .bind(arrays.updates)
        .bind(arrays.items)
        .fetch_optional(&self.pool)
        .await
        .map_err(append_error)?;
        if let Some((sku, requested, available)) = shortage {
            let sku = order_domain::Sku::try_from(sku.as_str())
                .map_err(|e| AppendError::Store(StoreError::Internal(e.to_string())))?;
            return Err(AppendError::Stock(match available {
                Some(available) => StockRejection::InsufficientStock {
                    sku,
                    requested,
                    available,
                },
                None => StockRejection::UnknownSku { sku },
            }));
        }
        metrics::counter!("orders_events_applied_total")
            .increment(u64::try_from(batch.recorded.len()).unwrap_or(0));
        Ok(())
    }
}

/// A row of the `new_event` composite type.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(type_name = "new_event")]
struct NewEventSql {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: Value,
    metadata: Value,
    tenant_id: String,
    idempotency_key: Option<String>,
}

/// SQLSTATE raised by `append_events` when it would refuse an append whose
/// stream has moved on since the caller loaded it (migration 4).
const STREAM_MOVED: &str = "SM001";

/// Sorts a failed append: a lost race (only the two constraints that mean
/// "someone appended first": postgres-es would call every 23505 a conflict;
/// or a refusal of a stream that moved on), an unreachable database, or a
/// projection failure.
fn append_error(err: sqlx::Error) -> AppendError {
    let lost_race = match &err {
        sqlx::Error::Database(db) => {
            matches!(
                db.constraint(),
                Some("events_pkey" | "events_one_stream_per_key")
            ) || db.code().as_deref() == Some(STREAM_MOVED)
        }
        _ => false,
    };
    if lost_race {
        AppendError::Conflict
    } else if is_unavailable(&err) {
        AppendError::Store(StoreError::Unavailable(err))
    } else {
        AppendError::Store(projection_error(err))
    }
}

/// The events of one append, decoded once for the projections.
struct EventBatch<'a> {
    serialized: &'a [SerializedEvent],
    recorded: Vec<RecordedEvent>,
}

impl<'a> EventBatch<'a> {
    fn new(serialized: &'a [SerializedEvent]) -> Result<Self, AppendError> {
        let mut recorded = Vec::with_capacity(serialized.len());
        for event in serialized {
            let unreadable = |reason: String| {
                AppendError::Store(StoreError::UnreadableEvent {
                    stream: format!("{}/{}", event.aggregate_type, event.aggregate_id),
                    sequence: i64::try_from(event.sequence).unwrap_or(i64::MAX),
                    reason,
                })
            };
            let shop_event = ShopEvent::decode(
                &event.aggregate_type,
                &event.event_type,
                &event.event_version,
                event.payload.clone(),
            )
            .map_err(|e| unreadable(e.to_string()))?;
            let tenant = event
                .metadata
                .get(TENANT_METADATA_KEY)
                .and_then(Value::as_str)
                .ok_or_else(|| unreadable(format!("metadata lacks {TENANT_METADATA_KEY}")))
                .and_then(|t| TenantId::try_from(t).map_err(|e| unreadable(e.to_string())))?;
            if shop_event.tenant().is_some_and(|t| *t != tenant) {
                return Err(unreadable(
                    "payload and metadata name different tenants".into(),
                ));
            }
            recorded.push(RecordedEvent {
                aggregate_id: event.aggregate_id.clone(),
                sequence: i64::try_from(event.sequence)
                    .map_err(|_| unreadable("sequence out of range".into()))?,
                tenant,
                event: shop_event,
            });
        }
        Ok(Self {
            serialized,
            recorded,
        })
    }

    fn new_events(&self) -> Vec<NewEventSql> {
        self.serialized
            .iter()
            .zip(&self.recorded)
            .map(|(event, recorded)| NewEventSql {
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: recorded.sequence,
                event_type: event.event_type.clone(),
                event_version: event.event_version.clone(),
                payload: event.payload.clone(),
                metadata: event.metadata.clone(),
                tenant_id: recorded.tenant.to_string(),
                idempotency_key: recorded.event.stream_key().map(|k| k.to_string()),
            })
            .collect()
    }
}

impl PersistedEventRepository for ProjectingEventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader.get_events::<A>(aggregate_id).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.reader
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await
    }

    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(PersistenceError::UnknownError(
                "snapshots are not supported: use PersistedEventStore::new_event_store".into(),
            ));
        }
        Ok(self.append(events).await?)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.reader.stream_events::<A>(aggregate_id).await
    }

    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        // postgres-es' version panics on a row error and orders by per-stream
        // sequence only; the rebuild reads by global position instead.
        Err(PersistenceError::UnknownError(
            "stream_all_events is not supported: use order_store::rebuild, which reads in commit order"
                .into(),
        ))
    }
}
