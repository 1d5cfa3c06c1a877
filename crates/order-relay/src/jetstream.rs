//! JetStream: the stream the relay publishes into, and pipelined, ordered,
//! de-duplicated publishing.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, Publish, PublishErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use futures::future::join_all;

use crate::outbox::{Cursor, OutboxEvent, UnpublishableEvent};

/// Each message's event's place in its node's commit order (docs/EVENTS.md):
/// the transaction id and the position, as stored.
pub const TRANSACTION_ID_HEADER: &str = "Orders-Transaction-Id";
pub const POSITION_HEADER: &str = "Orders-Position";
/// The chain of the relay checkpoint that published the message (a UUID in
/// `relay_checkpoints.chain`): on start, after a takeover and before a
/// batch is published again, a relay reads its chain's messages after the
/// last sequence it checkpointed, and does not publish those again.
pub const CHAIN_HEADER: &str = "Orders-Relay-Chain";

/// The subjects of the relay's stream.
pub const SUBJECTS: &str = "orders.>";

#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error(transparent)]
    Unpublishable(#[from] UnpublishableEvent),
    #[error("JetStream did not acknowledge event at position {position}: {reason}")]
    NotAcknowledged {
        position: i64,
        reason: String,
        /// No stream takes the subject (deleted, or never there).
        no_stream: bool,
    },
}

/// What a published batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Stored now.
    pub stored: u64,
    /// Already in the stream (a republished tail): dropped by JetStream's
    /// de-duplication on `Nats-Msg-Id`.
    pub duplicates: u64,
    /// The highest stream sequence acknowledged (0: none).
    pub last_sequence: u64,
}

/// A problem waiting will not mend: the relay stops with this message (and
/// a failure exit), releasing its lock, rather than retrying for ever.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

/// Creates the stream if it is missing and this relay never published
/// (file storage, `orders.>`, the given de-duplication window). A missing
/// stream after events were published was deleted: refused (`Permanent`),
/// since creating it again would silently leave out everything published
/// before; the operator's explicit choice to publish everything again is
/// `ORDERS_RELAY_REPUBLISH_FROM_START`. An existing stream must take the
/// relay's subjects and de-duplicate for at least `duplicate_window`: a
/// shorter window would turn a republished batch after a long outage into
/// duplicates.
pub async fn ensure_stream(
    jetstream: &Context,
    name: &str,
    duplicate_window: Duration,
    published_before: bool,
) -> anyhow::Result<()> {
    let mut stream = match jetstream.get_stream(name).await {
        Ok(stream) => stream,
        Err(error) if is_missing(&error) => {
            if published_before {
                return Err(Permanent(format!(
                    "JetStream stream {name} is missing, but this relay's checkpoint says it published events into it: \
                     was it deleted? Creating it again would leave out everything published before. \
                     To publish every event again into a new stream, start the relay once with \
                     ORDERS_RELAY_REPUBLISH_FROM_START=true"
                ))
                .into());
            }
            jetstream
                .create_stream(Config {
                    name: name.to_owned(),
                    subjects: vec![SUBJECTS.to_owned()],
                    storage: StorageType::File,
                    retention: RetentionPolicy::Limits,
                    discard: DiscardPolicy::Old,
                    duplicate_window,
                    description: Some(
                        "store-orders events, one message per event (order-service relay)".into(),
                    ),
                    ..Config::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("creating JetStream stream {name}: {e}"))?
        }
        Err(error) => anyhow::bail!("reading JetStream stream {name}: {error}"),
    };
    let info = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {name}: {e}"))?;
    if !info.config.subjects.iter().any(|s| s == SUBJECTS) {
        return Err(Permanent(format!(
            "JetStream stream {name} exists with subjects {:?}, not {SUBJECTS}: point ORDERS_RELAY_STREAM at a stream of its own",
            info.config.subjects
        ))
        .into());
    }
    if info.config.duplicate_window < duplicate_window {
        return Err(Permanent(format!(
            "JetStream stream {name} de-duplicates for {:?}, less than ORDERS_RELAY_DUPLICATE_WINDOW ({:?}): \
             a batch published again after a longer outage would be stored twice. Widen the stream's window \
             (nats stream edit {name} --dupe-window {}s) or lower ORDERS_RELAY_DUPLICATE_WINDOW",
            info.config.duplicate_window,
            duplicate_window,
            duplicate_window.as_secs()
        ))
        .into());
    }
    Ok(())
}

/// Whether `jetstream` still has the stream `name` (a publish that keeps
/// failing may mean it was deleted under the relay).
pub async fn stream_is_missing(jetstream: &Context, name: &str) -> bool {
    matches!(jetstream.get_stream(name).await, Err(error) if is_missing(&error))
}

fn is_missing(error: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND
    )
}

/// Publishes `events` and waits for every acknowledgement, each stream's
/// events in order.
///
/// In rounds: the first round holds the first event of each stream in the
/// batch, the second the second, and so on, each round in commit order.
/// A round is pipelined (all sent, then all acknowledgements awaited) and
/// the next is sent only once every message of it is acknowledged. So a
/// stream's next event never leaves before its previous one is stored,
/// whatever is lost in flight or reordered by a reconnect: a message
/// lost in flight fails its round, and the caller publishes the batch
/// again. Nothing ties a message to what else is in the stream, so
/// relays of different nodes or databases publishing into one stream
/// never block each other (the stream-wide `Nats-Expected-Last-Msg-Id`
/// chain this replaces could refuse a batch for ever once a republished
/// batch's stored part ended in the middle of it). Republished messages
/// are dropped by de-duplication on `Nats-Msg-Id`, so a retried batch
/// stores each event once. Batches of distinct streams (the common case)
/// are one round.
///
/// Each event goes with the chain of the checkpoint it belongs to
/// ([`CHAIN_HEADER`]).
pub async fn publish_in_order(
    jetstream: &Context,
    events: &[(&OutboxEvent, &str)],
) -> Result<Published, PublishFailure> {
    let mut published = Published::default();
    for round in rounds(events) {
        let done = publish_round(jetstream, &round).await?;
        published.stored += done.stored;
        published.duplicates += done.duplicates;
        published.last_sequence = published.last_sequence.max(done.last_sequence);
    }
    Ok(published)
}

/// `events` split into rounds: round `n` holds the `n`-th event of each
/// stream in the batch, in the batch's order.
fn rounds<'a>(events: &[(&'a OutboxEvent, &'a str)]) -> Vec<Vec<(&'a OutboxEvent, &'a str)>> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(events.len());
    let mut rounds: Vec<Vec<(&OutboxEvent, &str)>> = Vec::new();
    for &(event, chain) in events {
        let earlier = seen.entry(event.stream()).or_insert(0);
        if rounds.len() <= *earlier {
            rounds.push(Vec::new());
        }
        rounds[*earlier].push((event, chain));
        *earlier += 1;
    }
    rounds
}

/// Sends every message of a round, then awaits every acknowledgement.
async fn publish_round(
    jetstream: &Context,
    events: &[(&OutboxEvent, &str)],
) -> Result<Published, PublishFailure> {
    let mut pending = Vec::with_capacity(events.len());
    for &(event, chain) in events {
        let cursor = event.cursor();
        let publish = Publish::build()
            .payload(event.envelope()?)
            .message_id(event.message_id())
            .header(TRANSACTION_ID_HEADER, cursor.transaction_id.to_string())
            .header(POSITION_HEADER, cursor.position.to_string())
            .header(CHAIN_HEADER, chain);
        let sent = jetstream
            .send_publish(event.subject(), publish)
            .await
            .map_err(|e| PublishFailure::NotAcknowledged {
                position: event.cursor().position,
                reason: e.to_string(),
                no_stream: e.kind() == PublishErrorKind::StreamNotFound,
            })?;
        pending.push((event.cursor().position, sent));
    }
    let acks = join_all(
        pending
            .into_iter()
            .map(|(position, ack)| async move { (position, ack.await) }),
    )
    .await;
    let mut published = Published::default();
    for (position, ack) in acks {
        if let Ok(ack) = &ack {
            published.last_sequence = published.last_sequence.max(ack.sequence);
        }
        match ack {
            Ok(ack) if ack.duplicate => published.duplicates += 1,
            Ok(_) => published.stored += 1,
            Err(e) => {
                return Err(PublishFailure::NotAcknowledged {
                    position,
                    reason: e.to_string(),
                    no_stream: e.kind() == PublishErrorKind::StreamNotFound,
                })
            }
        }
    }
    Ok(published)
}

/// The stream of the relays' chain markers, beside `stream`: one subject per
/// chain, keeping its last marker only.
pub fn marker_stream(stream: &str) -> String {
    format!("{stream}_RELAY_CHAINS")
}

fn marker_subject(stream: &str, chain: &str) -> String {
    format!("orders-relay-chains.{stream}.{chain}")
}

/// Creates the marker stream if it is missing.
pub async fn ensure_marker_stream(jetstream: &Context, stream: &str) -> anyhow::Result<()> {
    let name = marker_stream(stream);
    match jetstream.get_stream(&name).await {
        Ok(_) => Ok(()),
        Err(error) if is_missing(&error) => jetstream
            .create_stream(Config {
                name: name.clone(),
                subjects: vec![format!("orders-relay-chains.{stream}.*")],
                storage: StorageType::File,
                max_messages_per_subject: 1,
                description: Some(format!(
                    "which relay session leads each chain of {stream} (order-service relay)"
                )),
                ..Config::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("creating JetStream stream {name}: {e}")),
        Err(error) => anyhow::bail!("reading JetStream stream {name}: {error}"),
    }
}

/// The last marker of `chain`: its sequence (0: none) and the relay session
/// that wrote it.
pub async fn last_marker(
    jetstream: &Context,
    stream: &str,
    chain: &str,
) -> anyhow::Result<(u64, Option<String>)> {
    let name = marker_stream(stream);
    let handle = jetstream
        .get_stream(&name)
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {name}: {e}"))?;
    match handle
        .get_last_raw_message_by_subject(&marker_subject(stream, chain))
        .await
    {
        Ok(message) => Ok((
            message.sequence,
            Some(String::from_utf8_lossy(&message.payload).into_owned()),
        )),
        Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok((0, None)),
        Err(error) => anyhow::bail!("reading the last marker of chain {chain}: {error}"),
    }
}

/// Another relay session marked the chain after this one: it leads now.
#[derive(Debug, thiserror::Error)]
#[error(
    "another relay took over chain {chain} (its marker at sequence {found} of the chain stream): this one stands down"
)]
pub struct Fenced {
    pub chain: String,
    pub found: u64,
}

/// Why a chain could not be marked.
#[derive(Debug, thiserror::Error)]
pub enum MarkFailure {
    #[error(transparent)]
    Fenced(#[from] Fenced),
    #[error(transparent)]
    Broker(#[from] PublishFailure),
}

/// Marks `chain` for `session`, accepted by the broker only if the chain's
/// last marker is still `expected` (JetStream's
/// `Nats-Expected-Last-Subject-Sequence`): a relay that lost its leadership
/// without knowing it (cut off from PostgreSQL, still reaching the broker)
/// is refused here, before it publishes another batch. Answers the new
/// marker's sequence. A refusal whose last marker is this session's own (it
/// was stored, then the acknowledgement was lost) goes on from it.
pub async fn mark(
    jetstream: &Context,
    stream: &str,
    chain: &str,
    session: &str,
    expected: u64,
) -> Result<u64, MarkFailure> {
    let broker = |reason: String, no_stream: bool| {
        MarkFailure::Broker(PublishFailure::NotAcknowledged {
            position: 0,
            reason,
            no_stream,
        })
    };
    let publish = Publish::build()
        .payload(session.to_owned().into())
        .expected_last_subject_sequence(expected);
    let acked = match jetstream
        .send_publish(marker_subject(stream, chain), publish)
        .await
    {
        Ok(ack) => ack.await,
        Err(error) => Err(error),
    };
    match acked {
        Ok(ack) => Ok(ack.sequence),
        Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
            let (found, by) = last_marker(jetstream, stream, chain)
                .await
                .map_err(|e| broker(format!("{e:#}"), false))?;
            if by.as_deref() == Some(session) {
                Ok(found)
            } else {
                Err(Fenced {
                    chain: chain.to_owned(),
                    found,
                }
                .into())
            }
        }
        Err(error) => Err(broker(
            format!("marking chain {chain}: {error}"),
            error.kind() == PublishErrorKind::StreamNotFound,
        )),
    }
}

/// What a relay's chain holds after a stream sequence.
#[derive(Debug, Default)]
pub struct ChainTail {
    /// The events (commit-order coordinates) its messages carry.
    pub cursors: Vec<Cursor>,
    /// Messages read (every relay's, headers only).
    pub scanned: u64,
}

/// The messages of `chain` in `stream` after sequence `after`: the
/// broker's truth about what a relay published since its checkpoint was
/// last saved. Read with an ephemeral consumer, headers only, up to the
/// stream's last message when asked.
pub async fn chain_after(
    jetstream: &Context,
    stream: &str,
    chain: &str,
    after: u64,
) -> anyhow::Result<ChainTail> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures::StreamExt;
    let mut tail = ChainTail::default();
    let mut handle = jetstream
        .get_stream(stream)
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {stream}: {e}"))?;
    let last = handle
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {stream}: {e}"))?
        .state
        .last_sequence;
    if last <= after {
        return Ok(tail);
    }
    let consumer = handle
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ack_policy: AckPolicy::None,
            headers_only: true,
            inactive_threshold: Duration::from_secs(30),
            ..pull::Config::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {stream}: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {stream}: {e}"))?;
    loop {
        let message = match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => anyhow::bail!("reading JetStream stream {stream}: {e}"),
            Ok(None) => anyhow::bail!("reading JetStream stream {stream}: the consumer ended"),
            Err(_) => anyhow::bail!(
                "reading JetStream stream {stream}: no message within 10 s before sequence {last}"
            ),
        };
        tail.scanned += 1;
        let sequence = message
            .info()
            .map_err(|e| anyhow::anyhow!("reading JetStream stream {stream}: {e}"))?
            .stream_sequence;
        if let Some(headers) = message.headers.as_ref() {
            let header = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
            if header(CHAIN_HEADER).as_deref() == Some(chain) {
                let transaction_id = header(TRANSACTION_ID_HEADER).and_then(|v| v.parse().ok());
                let position = header(POSITION_HEADER).and_then(|v| v.parse().ok());
                if let (Some(transaction_id), Some(position)) = (transaction_id, position) {
                    tail.cursors.push(Cursor {
                        transaction_id,
                        position,
                    });
                }
            }
        }
        if sequence >= last {
            return Ok(tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_holds_one_event_per_stream_and_each_stream_keeps_its_order() {
        // Commit order: a1, b1, a2, c1 (another tenant's order "a"), a3, b2.
        let batch = [
            OutboxEvent::of_order("shop", "a", 1, 1),
            OutboxEvent::of_order("shop", "b", 1, 2),
            OutboxEvent::of_order("shop", "a", 2, 3),
            OutboxEvent::of_order("other", "a", 1, 4),
            OutboxEvent::of_order("shop", "a", 3, 5),
            OutboxEvent::of_order("shop", "b", 2, 6),
        ];
        let batch: Vec<(&OutboxEvent, &str)> = batch.iter().map(|e| (e, "chain")).collect();
        let positions: Vec<Vec<i64>> = rounds(&batch)
            .iter()
            .map(|round| round.iter().map(|(e, _)| e.cursor().position).collect())
            .collect();
        assert_eq!(positions, [vec![1, 2, 4], vec![3, 6], vec![5]]);
    }

    #[test]
    fn a_batch_of_distinct_streams_is_one_round() {
        let batch: Vec<OutboxEvent> = (1..=50)
            .map(|i| OutboxEvent::of_order("shop", &format!("order-{i}"), 1, i))
            .collect();
        let batch: Vec<(&OutboxEvent, &str)> = batch.iter().map(|e| (e, "chain")).collect();
        assert_eq!(rounds(&batch).len(), 1);
        assert!(rounds(&[]).is_empty());
    }
}
