//! JetStream: the stream the relay publishes into, and pipelined, ordered,
//! de-duplicated publishing.

use std::time::Duration;

use async_nats::jetstream::context::{Publish, PublishErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;
use futures::future::join_all;

use crate::outbox::{OutboxEvent, UnpublishableEvent};

/// The subjects of the relay's stream.
pub const SUBJECTS: &str = "orders.>";

#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error(transparent)]
    Unpublishable(#[from] UnpublishableEvent),
    #[error("JetStream did not acknowledge event at position {position}: {reason}")]
    NotAcknowledged { position: i64, reason: String },
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

/// Creates the stream if it is missing (file storage, `orders.>`, the
/// given de-duplication window); an existing stream is used as it is, if it
/// takes the relay's subjects.
pub async fn ensure_stream(
    jetstream: &Context,
    name: &str,
    duplicate_window: Duration,
) -> anyhow::Result<()> {
    let mut stream = jetstream
        .get_or_create_stream(Config {
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
        .map_err(|e| anyhow::anyhow!("creating or reading JetStream stream {name}: {e}"))?;
    let info = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading JetStream stream {name}: {e}"))?;
    if !info.config.subjects.iter().any(|s| s == SUBJECTS) {
        anyhow::bail!(
            "JetStream stream {name} exists with subjects {:?}, not {SUBJECTS}: point ORDERS_RELAY_STREAM at a stream of its own",
            info.config.subjects
        );
    }
    Ok(())
}

/// Publishes `events` in order and waits for every acknowledgement.
///
/// Pipelined: all are sent, then all acknowledgements awaited. Ordered even
/// across a broker reconnect: each message after the first names the one
/// before it (`Nats-Expected-Last-Msg-Id`), so JetStream refuses a message
/// whose predecessor was lost in flight, instead of storing it out of
/// order; the caller then publishes the batch again. The first message's
/// predecessor was acknowledged in an earlier batch. Republished messages
/// are dropped by de-duplication on `Nats-Msg-Id` (which JetStream checks
/// first), so a retried batch stores each event once.
pub async fn publish_in_order(
    jetstream: &Context,
    events: &[OutboxEvent],
) -> Result<Published, PublishFailure> {
    let mut pending = Vec::with_capacity(events.len());
    let mut previous: Option<String> = None;
    for event in events {
        let id = event.message_id();
        let mut publish = Publish::build().payload(event.envelope()?).message_id(&id);
        if let Some(previous) = &previous {
            publish = publish.expected_last_message_id(previous);
        }
        let sent = jetstream
            .send_publish(event.subject(), publish)
            .await
            .map_err(|e| PublishFailure::NotAcknowledged {
                position: event.cursor().position,
                reason: e.to_string(),
            })?;
        pending.push((event.cursor().position, sent));
        previous = Some(id);
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
                let reason = match e.kind() {
                    PublishErrorKind::WrongLastMessageId => {
                        "its predecessor did not reach the stream (the batch is published again)"
                            .to_owned()
                    }
                    _ => e.to_string(),
                };
                return Err(PublishFailure::NotAcknowledged { position, reason });
            }
        }
    }
    Ok(published)
}
