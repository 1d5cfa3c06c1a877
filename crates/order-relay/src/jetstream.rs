//! JetStream: the stream the relay publishes into, and pipelined, ordered,
//! de-duplicated publishing.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, Publish, PublishErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use futures::future::join_all;

use crate::outbox::{OutboxEvent, UnpublishableEvent};

/// Each message's event's place in its node's commit order (docs/EVENTS.md):
/// the transaction id and the position, as stored.
pub const TRANSACTION_ID_HEADER: &str = "Orders-Transaction-Id";
pub const POSITION_HEADER: &str = "Orders-Position";

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
pub async fn publish_in_order(
    jetstream: &Context,
    events: &[OutboxEvent],
) -> Result<Published, PublishFailure> {
    let mut published = Published::default();
    for round in rounds(events) {
        let done = publish_round(jetstream, &round).await?;
        published.stored += done.stored;
        published.duplicates += done.duplicates;
    }
    Ok(published)
}

/// `events` split into rounds: round `n` holds the `n`-th event of each
/// stream in the batch, in the batch's order.
fn rounds(events: &[OutboxEvent]) -> Vec<Vec<&OutboxEvent>> {
    let mut seen: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(events.len());
    let mut rounds: Vec<Vec<&OutboxEvent>> = Vec::new();
    for event in events {
        let earlier = seen.entry(event.stream()).or_insert(0);
        if rounds.len() <= *earlier {
            rounds.push(Vec::new());
        }
        rounds[*earlier].push(event);
        *earlier += 1;
    }
    rounds
}

/// Sends every message of a round, then awaits every acknowledgement.
async fn publish_round(
    jetstream: &Context,
    events: &[&OutboxEvent],
) -> Result<Published, PublishFailure> {
    let mut pending = Vec::with_capacity(events.len());
    for event in events {
        let cursor = event.cursor();
        let publish = Publish::build()
            .payload(event.envelope()?)
            .message_id(event.message_id())
            .header(TRANSACTION_ID_HEADER, cursor.transaction_id.to_string())
            .header(POSITION_HEADER, cursor.position.to_string());
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
        let positions: Vec<Vec<i64>> = rounds(&batch)
            .iter()
            .map(|round| round.iter().map(|e| e.cursor().position).collect())
            .collect();
        assert_eq!(positions, [vec![1, 2, 4], vec![3, 6], vec![5]]);
    }

    #[test]
    fn a_batch_of_distinct_streams_is_one_round() {
        let batch: Vec<OutboxEvent> = (1..=50)
            .map(|i| OutboxEvent::of_order("shop", &format!("order-{i}"), 1, i))
            .collect();
        assert_eq!(rounds(&batch).len(), 1);
        assert!(rounds(&[]).is_empty());
    }
}
