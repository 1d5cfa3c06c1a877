//! Running one command against one stream: load, decide, commit, and on a
//! concurrent append, start over.

use std::collections::HashMap;
use std::error::Error;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore};

use crate::error::{StockRejection, StoreError};
use crate::event_repository::{AppendError, ProjectingEventRepository};

/// cqrs-es' event store over our repository. Plain event store: no snapshots.
pub(crate) type EventStoreOf<A> = PersistedEventStore<ProjectingEventRepository, A>;

pub(crate) fn event_store<A: Aggregate>(pool: &sqlx::PgPool) -> EventStoreOf<A> {
    PersistedEventStore::new_event_store(ProjectingEventRepository::new(pool.clone()))
}

/// How many times a command is re-run after losing a race to a concurrent
/// command on the same stream. One re-run settles a duplicate checkout (it
/// reloads and sees the winner's order); the rest absorb bursts of staff
/// actions on one order.
const CONFLICT_ATTEMPTS: u32 = 8;

/// The stream after the command, and whether the command added events to it.
#[derive(Debug)]
pub(crate) struct Executed<A> {
    pub aggregate: A,
    pub changed: bool,
}

#[derive(Debug)]
pub(crate) enum ExecuteError<E> {
    /// The aggregate refused the command.
    Rejected(E),
    /// The inventory refused the command's stock change.
    Stock(StockRejection),
    Store(StoreError),
}

/// Loads the stream `id`, checks `precondition` on it, lets the aggregate
/// decide, and commits. A conflict (someone appended first) is never the
/// caller's problem: the command is re-run on the fresh stream, where a
/// duplicate becomes a replay.
pub(crate) async fn execute<A>(
    command_name: &'static str,
    store: &EventStoreOf<A>,
    id: &str,
    command: &A::Command,
    metadata: &HashMap<String, String>,
    precondition: impl Fn(&A) -> Result<(), A::Error>,
) -> Result<Executed<A>, ExecuteError<A::Error>>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    execute_loaded(
        command_name,
        store,
        id,
        None,
        command,
        metadata,
        precondition,
    )
    .await
}

/// Loads the stream `id` (one query).
pub(crate) async fn load<A: Aggregate>(
    store: &EventStoreOf<A>,
    id: &str,
) -> Result<EventStoreAggregateContext<A>, ExecuteError<A::Error>> {
    store.load_aggregate(id).await.map_err(from_framework)
}

/// As [`execute`], the first attempt on a stream the caller loaded already.
pub(crate) async fn execute_loaded<A>(
    command_name: &'static str,
    store: &EventStoreOf<A>,
    id: &str,
    mut loaded: Option<EventStoreAggregateContext<A>>,
    command: &A::Command,
    metadata: &HashMap<String, String>,
    precondition: impl Fn(&A) -> Result<(), A::Error>,
) -> Result<Executed<A>, ExecuteError<A::Error>>
where
    A: Aggregate<Services = ()> + Clone,
    A::Command: Clone,
{
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let mut context = match loaded.take() {
            Some(context) => context,
            None => load(store, id).await?,
        };
        precondition(&context.aggregate).map_err(ExecuteError::Rejected)?;
        let sink = EventSink::<A>::default();
        context
            .aggregate
            .handle(command.clone(), &(), &sink)
            .await
            .map_err(ExecuteError::Rejected)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Executed {
                aggregate: context.aggregate,
                changed: false,
            });
        }
        // The sink has applied the events already: this is the state after.
        let aggregate = context.aggregate.clone();
        match store.commit(events, context, metadata.clone()).await {
            Ok(_) => {
                return Ok(Executed {
                    aggregate,
                    changed: true,
                })
            }
            Err(AggregateError::AggregateConflict) => {
                metrics::counter!(
                    "orders_commands_total",
                    "command" => command_name,
                    "outcome" => "conflict_retried"
                )
                .increment(1);
                tracing::debug!(
                    stream = A::TYPE,
                    id,
                    attempt,
                    "concurrent append; re-running"
                );
            }
            Err(other) => return Err(from_framework(other)),
        }
    }
    Err(ExecuteError::Store(StoreError::ContendedStream {
        stream: format!("{}/{id}", A::TYPE),
        attempts: CONFLICT_ATTEMPTS,
    }))
}

/// Recovers our own errors from the boxes cqrs-es carries them in.
fn from_framework<E: Error>(err: AggregateError<E>) -> ExecuteError<E> {
    match err {
        AggregateError::UserError(e) => ExecuteError::Rejected(e),
        AggregateError::AggregateConflict => {
            ExecuteError::Store(StoreError::Internal("unexpected aggregate conflict".into()))
        }
        AggregateError::DatabaseConnectionError(boxed)
        | AggregateError::DeserializationError(boxed)
        | AggregateError::UnexpectedError(boxed) => from_boxed(boxed),
    }
}

fn from_boxed<E>(boxed: Box<dyn Error + Send + Sync + 'static>) -> ExecuteError<E> {
    let boxed = match boxed.downcast::<AppendError>() {
        Ok(append) => {
            return match *append {
                AppendError::Stock(rejection) => ExecuteError::Stock(rejection),
                AppendError::Store(store) => ExecuteError::Store(store),
                AppendError::Conflict => ExecuteError::Store(StoreError::Internal(
                    "unexpected aggregate conflict".into(),
                )),
            }
        }
        Err(other) => other,
    };
    match boxed.downcast::<sqlx::Error>() {
        Ok(sql) => ExecuteError::Store((*sql).into()),
        Err(other) => ExecuteError::Store(StoreError::Internal(other.to_string())),
    }
}
