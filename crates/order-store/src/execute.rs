//! Running one command against one stream: decide on the stream as known,
//! append, and when the stream turns out to have moved on, fold what the
//! store returned and decide again.
//!
//! A lost race is never the caller's problem: a duplicate of a command that
//! just committed becomes a replay (or a reused-key refusal) on the fresh
//! stream, whatever the stock, because the store looks at the stream again
//! after it locked the inventory rows and before it checks stock.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use order_domain::TenantId;
use serde_json::value::RawValue;

use crate::error::{StockRejection, StoreError};
use crate::event_store::{Append, Appended, EventStore, Refusal, Stream};
use crate::stream_kind::StreamKind;

/// How many times a command is decided again after losing a race to a
/// concurrent command on the same stream. One settles a duplicate checkout
/// (it sees the winner's order); the rest absorb bursts of staff actions on
/// one order.
pub(crate) const CONFLICT_ATTEMPTS: u32 = 8;

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

impl<E> From<StoreError> for ExecuteError<E> {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

/// The events `command` produces on `aggregate`, and the aggregate after
/// them. Pure: the aggregate's own `handle`, through cqrs-es' sink.
pub(crate) async fn decide<A>(
    aggregate: &A,
    command: A::Command,
) -> Result<(A, Vec<A::Event>), A::Error>
where
    A: Aggregate<Services = ()> + Clone,
{
    let mut after = aggregate.clone();
    let sink = EventSink::<A>::default();
    after.handle(command, &(), &sink).await?;
    Ok((after, sink.collect().await))
}

/// Counts a command decided again because its stream moved on.
pub(crate) fn count_rerun(command_name: &'static str, stream: &'static str, id: &str) {
    metrics::counter!(
        "orders_commands_total",
        "command" => command_name,
        "outcome" => "conflict_retried"
    )
    .increment(1);
    tracing::debug!(stream, id, "the stream moved on; deciding again");
}

/// Runs `command` on the stream `id` of `tenant`, starting from `stream`
/// (loaded, or assumed empty for a keyed stream), until it is stored,
/// found unnecessary, or refused.
pub(crate) async fn execute<A>(
    store: &EventStore,
    command_name: &'static str,
    tenant: &TenantId,
    id: &str,
    mut stream: Stream<A>,
    command: &A::Command,
    metadata: &RawValue,
) -> Result<Executed<A>, ExecuteError<A::Error>>
where
    A: StreamKind,
    A::Command: Clone,
{
    for _ in 0..CONFLICT_ATTEMPTS {
        let (after, events) = decide(&stream.aggregate, command.clone())
            .await
            .map_err(ExecuteError::Rejected)?;
        if events.is_empty() {
            return Ok(Executed {
                aggregate: after,
                changed: false,
            });
        }
        let append = Append::<A> {
            tenant,
            id,
            expected: stream.version,
            events: &events,
            metadata,
            prices: &[],
        };
        match store.append(&append).await? {
            Appended::Stored => {
                return Ok(Executed {
                    aggregate: after,
                    changed: true,
                })
            }
            Appended::Moved(newer) => stream.apply(newer),
            Appended::Conflict => stream = store.load(tenant, id).await?,
            Appended::Refused(refusal) => return Err(ExecuteError::Stock(refusal.into())),
            Appended::Limited(_) | Appended::Unpaid(_) => {
                return Err(ExecuteError::Store(StoreError::Internal(
                    "a bound refused an append that has none".into(),
                )))
            }
        }
        count_rerun(command_name, A::TYPE, id);
    }
    Err(ExecuteError::Store(StoreError::ContendedStream {
        stream: format!("{}/{id}", A::TYPE),
        attempts: CONFLICT_ATTEMPTS,
    }))
}

impl From<Refusal> for StockRejection {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::UnknownSku(sku) | Refusal::Repriced(sku) => Self::UnknownSku { sku },
            Refusal::Short {
                sku,
                requested,
                available,
            } => Self::InsufficientStock {
                sku,
                requested,
                available,
            },
        }
    }
}
