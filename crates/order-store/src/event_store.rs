//! The event store's two operations, typed: load a stream, and append to it
//! with its projections in one round trip.
//!
//! Both go through our own SQL rather than postgres-es' repository: a
//! stream is read by (tenant, kind, id), and an append states what it was
//! decided on (the stream's last sequence, the prices of its lines) and
//! gets a typed answer (`append_to_stream`, migration 5), so that no error
//! travels boxed through cqrs-es and is recovered by downcasting.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use order_domain::{CustomerId, Order, Sku, TenantId};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::PgPool;

use crate::catalogue_queries::CataloguePrice;
use crate::error::{constraint_of, is_transient, is_unavailable, StoreError};
use crate::group_commit::GroupCommit;
use crate::projection::rows::{ProjectionArrays, StockGuardSql};
use crate::projection::{projection_error, ReadModelChanges, TenantChanges};
use crate::shop_event::RecordedEvent;
use crate::stream_kind::StreamKind;
use crate::unpaid_limit::{UnpaidBound, UnpaidLimit, UnpaidRefusal};

/// How often a transaction that PostgreSQL aborted as a deadlock or a
/// serialization failure is run again before the error reaches the caller.
const TRANSIENT_ATTEMPTS: u32 = 5;

/// A stream as far as the caller knows it: the aggregate folded from its
/// events, and the sequence of the last one (0: no event).
#[derive(Debug, Clone)]
pub(crate) struct Stream<A> {
    pub aggregate: A,
    pub version: i64,
}

impl<A: StreamKind> Stream<A> {
    /// A stream with no event yet: what a keyed command (a checkout, a stock
    /// adjustment) assumes before it knows better.
    pub fn empty() -> Self {
        Self {
            aggregate: A::default(),
            version: 0,
        }
    }

    /// Folds events read from the store (in sequence order) into the stream.
    pub fn apply(&mut self, events: Vec<(i64, A::Event)>) {
        for (sequence, event) in events {
            self.aggregate.apply(event);
            self.version = sequence;
        }
    }
}

/// What the store did with an append.
#[derive(Debug)]
pub(crate) enum Appended<A: Aggregate> {
    /// The events are stored and projected.
    Stored,
    /// The stream had these events after the caller's version: nothing was
    /// stored; fold them and decide again.
    Moved(Vec<(i64, A::Event)>),
    /// A concurrent append won on the stream's keys: nothing was stored;
    /// load the stream and decide again.
    Conflict,
    /// The inventory refused the change, on the stream the caller knew.
    Refused(Refusal),
    /// The customer reached the bound on abandonments: nothing was stored.
    Limited(Limited),
    /// The order would take its customer's unpaid orders over a bound:
    /// nothing was stored.
    Unpaid(UnpaidRefusal),
}

/// A refusal by a bound: its value, and how long until one more is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    pub most: u32,
    pub retry_after: Duration,
}

/// The bound an abandon by a customer is held to: at most `most` in any
/// `window`, counted at `at` under a per-customer lock (migration 9).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AbandonmentBound<'a> {
    pub customer: &'a CustomerId,
    pub at: DateTime<Utc>,
    pub most: u32,
    pub window: Duration,
}

/// The statement that stores an append.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Statement<'a> {
    /// `append_to_stream`: any command's events.
    Append,
    /// `abandon_checkout`: the first event of an order stream, a
    /// `CheckoutAbandoned`, within the bound for a customer (None: staff).
    Abandon(Option<AbandonmentBound<'a>>),
}

/// Why the inventory refused an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownSku(Sku),
    /// A line was priced at another name or price than the catalogue's now.
    Repriced(Sku),
    Short {
        sku: Sku,
        requested: i64,
        available: i64,
    },
}

/// One append: the events of one stream, decided on `expected`.
#[derive(Debug)]
pub(crate) struct Append<'a, A: Aggregate> {
    pub tenant: &'a TenantId,
    pub id: &'a str,
    /// The stream's last sequence the events were decided on.
    pub expected: i64,
    pub events: &'a [A::Event],
    /// JSON object stored beside every event (tenant, actor, request id).
    pub metadata: &'a RawValue,
    /// The catalogue entries order lines were priced with.
    pub prices: &'a [(&'a Sku, &'a CataloguePrice)],
}

/// A stream as the store's own commands read it (by tenant, kind and id;
/// every stored version decoded by [`crate::ShopEvent::decode`]), folded:
/// the aggregate, and the sequence of its last event (0: none).
pub async fn load_stream<A: StreamKind>(
    pool: &PgPool,
    tenant: &TenantId,
    id: &str,
) -> Result<(A, i64), StoreError> {
    let stream = EventStore::new(pool.clone()).load::<A>(tenant, id).await?;
    Ok((stream.aggregate, stream.version))
}

/// Loads and appends streams.
#[derive(Debug, Clone)]
pub(crate) struct EventStore {
    pool: PgPool,
    /// Where appends go: this process's writers (several appends in one
    /// transaction), or None: each its own call on the pool.
    group_commit: Option<GroupCommit>,
    /// The bounds every order an append places is checked against (None:
    /// none, e.g. for a store that never places orders).
    unpaid: Option<UnpaidLimit>,
}

/// A row of the `new_event` composite type.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(type_name = "new_event")]
pub(crate) struct NewEventSql {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: Json<Box<RawValue>>,
    metadata: Json<Box<RawValue>>,
    tenant_id: String,
    idempotency_key: Option<String>,
}

/// A row of the `catalogue_price` composite type.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(type_name = "catalogue_price")]
pub(crate) struct CataloguePriceSql {
    sku: String,
    name: String,
    unit_price: i64,
    currency: String,
}

/// A row of `append_to_stream`'s answer.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AppendAnswer {
    pub outcome: String,
    pub sku: Option<String>,
    pub requested: Option<i64>,
    pub available: Option<i64>,
    pub sequence: Option<i64>,
    pub event_type: Option<String>,
    pub event_version: Option<String>,
    pub payload: Option<String>,
}

/// A stored event, as a stream load reads it.
#[derive(Debug, sqlx::FromRow)]
struct StoredEvent {
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            group_commit: None,
            unpaid: None,
        }
    }

    /// The same store, checking the orders its appends place against `limit`.
    pub fn with_unpaid_limit(self, limit: UnpaidLimit) -> Self {
        Self {
            unpaid: Some(limit),
            ..self
        }
    }

    /// The same store, its appends (not its abandons) through `writers`.
    pub fn with_group_commit(self, writers: GroupCommit) -> Self {
        Self {
            group_commit: Some(writers),
            ..self
        }
    }

    /// The stream `id` of kind `A` in `tenant` (empty if it has no event).
    pub async fn load<A: StreamKind>(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Stream<A>, StoreError> {
        let rows = sqlx::query_file_as!(
            StoredEvent,
            "src/sql/load_stream.sql",
            tenant.as_str(),
            A::TYPE,
            id
        )
        .fetch_all(&self.pool)
        .await?;
        let mut stream = Stream::empty();
        stream.apply(
            rows.into_iter()
                .map(|row| {
                    decode::<A>(
                        id,
                        row.sequence,
                        &row.event_type,
                        &row.event_version,
                        &row.payload,
                    )
                })
                .collect::<Result<_, _>>()?,
        );
        Ok(stream)
    }

    /// Appends `append.events` and projects them in one transaction, or
    /// says why not (see [`Appended`]).
    pub async fn append<A: StreamKind>(
        &self,
        append: &Append<'_, A>,
    ) -> Result<Appended<A>, StoreError> {
        self.store(append, Statement::Append).await
    }

    /// Appends a `CheckoutAbandoned` as the first event of its order
    /// stream, unless the stream has events (then: `Moved`, with them) or
    /// `bound` is reached (then: `Limited`).
    pub async fn abandon(
        &self,
        append: &Append<'_, Order>,
        bound: Option<AbandonmentBound<'_>>,
    ) -> Result<Appended<Order>, StoreError> {
        if append.expected != 0 {
            return Err(StoreError::Internal(
                "an abandonment can only be a stream's first event".into(),
            ));
        }
        self.store(append, Statement::Abandon(bound)).await
    }

    async fn store<A: StreamKind>(
        &self,
        append: &Append<'_, A>,
        statement: Statement<'_>,
    ) -> Result<Appended<A>, StoreError> {
        let call = Arc::new(AppendCall::new(append, self.unpaid)?);
        let mut attempt = 1;
        loop {
            let answers = match (&self.group_commit, statement) {
                (Some(writers), Statement::Append) if call.arrays.abandonments.is_empty() => {
                    writers.append(Arc::clone(&call)).await
                }
                _ => call.run_alone(&self.pool, statement).await,
            };
            match answers.and_then(|answers| call.outcome::<A>(answers)) {
                Err(AppendFailure::Database(err))
                    if is_transient(&err) && attempt < TRANSIENT_ATTEMPTS =>
                {
                    metrics::counter!("orders_transient_retries_total").increment(1);
                    tracing::debug!(attempt, error = %err, "retrying a deadlocked append");
                    let pause = rand::random_range(1..=10 * u64::from(attempt));
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                Err(AppendFailure::Database(err)) => return Err(append_error(err)),
                Err(AppendFailure::Conflict) => return Ok(Appended::Conflict),
                Err(AppendFailure::Store(err)) => return Err(err),
                Ok(appended) => return Ok(appended),
            }
        }
    }
}

/// One append, prepared once for all its attempts: the rows of
/// `append_to_stream`'s arguments, owned, so that a writer of the group
/// commit can store it beside others.
#[derive(Debug)]
pub(crate) struct AppendCall {
    pub tenant: TenantId,
    pub aggregate_type: &'static str,
    pub id: String,
    pub expected: i64,
    pub events: Vec<NewEventSql>,
    pub guard: Vec<StockGuardSql>,
    pub prices: Vec<CataloguePriceSql>,
    pub arrays: ProjectionArrays,
    /// The bounds on the customer's unpaid orders (None: unbounded).
    pub unpaid: Option<UnpaidLimit>,
    count: u64,
}

pub(crate) enum AppendFailure {
    Conflict,
    Database(sqlx::Error),
    Store(StoreError),
}

impl AppendCall {
    fn new<A: StreamKind>(
        append: &Append<'_, A>,
        unpaid: Option<UnpaidLimit>,
    ) -> Result<Self, StoreError> {
        let mut events = Vec::with_capacity(append.events.len());
        let mut recorded = Vec::with_capacity(append.events.len());
        for (offset, event) in (1..).zip(append.events) {
            let sequence = append.expected + offset;
            let shop_event = A::to_shop_event(event);
            let payload = serde_json::value::to_raw_value(event).map_err(|e| {
                StoreError::Internal(format!("cannot serialize {}: {e}", event.event_type()))
            })?;
            events.push(NewEventSql {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: append.id.to_owned(),
                sequence,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: Json(payload),
                metadata: Json(append.metadata.to_owned()),
                tenant_id: append.tenant.to_string(),
                idempotency_key: shop_event.stream_key().map(|k| k.to_string()),
            });
            recorded.push(RecordedEvent {
                aggregate_id: append.id.to_owned(),
                sequence,
                tenant: append.tenant.clone(),
                event: shop_event,
            });
        }
        let changes = ReadModelChanges::from_events(&recorded)
            .map_err(|e| StoreError::Internal(format!("cannot project events: {e}")))?;
        let empty = TenantChanges::default();
        let tenant_changes = changes.of(append.tenant).unwrap_or(&empty);
        let prices = append
            .prices
            .iter()
            .map(|(sku, price)| CataloguePriceSql {
                sku: sku.to_string(),
                name: price.name.to_string(),
                unit_price: price.unit_price.amount,
                currency: price.unit_price.currency.to_string(),
            })
            .collect();
        Ok(Self {
            tenant: append.tenant.clone(),
            aggregate_type: A::TYPE,
            id: append.id.to_owned(),
            expected: append.expected,
            events,
            guard: tenant_changes.stock_guard(append.tenant),
            prices,
            arrays: ProjectionArrays::of(append.tenant, tenant_changes),
            unpaid,
            count: recorded.len() as u64,
        })
    }

    /// Stores this append alone, in its own transaction.
    pub(crate) async fn run_alone(
        &self,
        pool: &PgPool,
        statement: Statement<'_>,
    ) -> Result<Vec<AppendAnswer>, AppendFailure> {
        let arrays = &self.arrays;
        let query = match statement {
            // An abandonment is only ever a stream's first event, written by
            // `abandon_checkout`; the checkout's path does not carry them.
            Statement::Append if !arrays.abandonments.is_empty() => {
                return Err(AppendFailure::Store(StoreError::Internal(
                    "a CheckoutAbandoned is appended by abandon_checkout only".into(),
                )))
            }
            Statement::Append => sqlx::query_as(include_str!("sql/append_to_stream.sql"))
                .bind(self.tenant.as_str())
                .bind(self.aggregate_type)
                .bind(&self.id)
                .bind(self.expected)
                .bind(&self.events)
                .bind(&self.guard)
                .bind(&self.prices)
                .bind(&arrays.products)
                .bind(&arrays.stock)
                .bind(&arrays.orders)
                .bind(&arrays.updates)
                .bind(&arrays.items)
                .bind(self.unpaid.map(|u| i64::from(u.orders)))
                .bind(self.unpaid.map(|u| i64::from(u.units))),
            Statement::Abandon(bound) => sqlx::query_as(include_str!("sql/abandon_checkout.sql"))
                .bind(self.tenant.as_str())
                .bind(&self.id)
                .bind(&self.events)
                .bind(&arrays.abandonments)
                .bind(bound.map(|b| b.customer.as_str()))
                .bind(bound.map(|b| b.at))
                .bind(bound.map(|b| i64::from(b.most)))
                .bind(bound.map(|b| b.window)),
        };
        query.fetch_all(pool).await.map_err(|err| {
            if lost_race(&err) {
                AppendFailure::Conflict
            } else {
                AppendFailure::Database(err)
            }
        })
    }

    /// What the store's answer to this append means.
    fn outcome<A: StreamKind>(
        &self,
        answers: Vec<AppendAnswer>,
    ) -> Result<Appended<A>, AppendFailure> {
        let answer = |what: String| AppendFailure::Store(StoreError::Internal(what));
        let first = answers
            .first()
            .ok_or_else(|| answer("append_to_stream answered nothing".into()))?;
        let sku = || {
            first
                .sku
                .as_deref()
                .and_then(|s| Sku::try_from(s).ok())
                .ok_or_else(|| answer(format!("append_to_stream: {} without a SKU", first.outcome)))
        };
        Ok(match first.outcome.as_str() {
            "appended" => {
                metrics::counter!("orders_events_applied_total").increment(self.count);
                Appended::Stored
            }
            "moved" => Appended::Moved(
                answers
                    .into_iter()
                    .map(|row| {
                        decode::<A>(
                            &self.id,
                            row.sequence.unwrap_or_default(),
                            row.event_type.as_deref().unwrap_or_default(),
                            row.event_version.as_deref().unwrap_or_default(),
                            row.payload.as_deref().unwrap_or_default(),
                        )
                    })
                    .collect::<Result<_, _>>()
                    .map_err(AppendFailure::Store)?,
            ),
            "limited" => Appended::Limited(Limited {
                most: first
                    .requested
                    .and_then(|most| u32::try_from(most).ok())
                    .unwrap_or_default(),
                retry_after: Duration::from_secs(
                    first
                        .available
                        .and_then(|seconds| u64::try_from(seconds).ok())
                        .unwrap_or(1),
                ),
            }),
            "unpaid" => Appended::Unpaid(UnpaidRefusal {
                bound: first
                    .sku
                    .as_deref()
                    .and_then(UnpaidBound::parse)
                    .ok_or_else(|| answer(format!("append_to_stream: unpaid {:?}", first.sku)))?,
                most: first.requested.unwrap_or_default(),
                held: first.available.unwrap_or_default(),
            }),
            "unknown" => Appended::Refused(Refusal::UnknownSku(sku()?)),
            "repriced" => Appended::Refused(Refusal::Repriced(sku()?)),
            "short" => Appended::Refused(Refusal::Short {
                sku: sku()?,
                requested: first.requested.unwrap_or_default(),
                available: first.available.unwrap_or_default(),
            }),
            other => return Err(answer(format!("append_to_stream answered {other:?}"))),
        })
    }
}

fn decode<A: StreamKind>(
    id: &str,
    sequence: i64,
    event_type: &str,
    event_version: &str,
    payload: &str,
) -> Result<(i64, A::Event), StoreError> {
    A::decode(event_type, event_version, payload)
        .map(|event| (sequence, event))
        .map_err(|e| StoreError::UnreadableEvent {
            stream: format!("{}/{id}", A::TYPE),
            sequence,
            reason: e.to_string(),
        })
}

/// Only the two constraints that mean "someone appended to this stream
/// first" (postgres-es would call every 23505 a conflict).
fn lost_race(err: &sqlx::Error) -> bool {
    matches!(
        constraint_of(err),
        Some("events_pkey" | "events_one_stream_per_key")
    )
}

/// An unreachable database, or a projection failure, named.
pub(crate) fn append_error(err: sqlx::Error) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(err)
    } else {
        projection_error(err)
    }
}
