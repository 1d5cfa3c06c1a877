//! `orders events tail`: a durable JetStream consumer of the relay's stream
//! that prints each event as it arrives (one JSON line each), for operators
//! and as the smallest example of a consumer (docs/EVENTS.md).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;

/// Most events asked for at once.
const BATCH: usize = 100;

/// What to follow and as whom.
#[derive(Debug, Clone)]
pub struct Tail {
    pub nats_url: String,
    pub stream: String,
    /// The consumer's durable name: a later `tail` with the same name
    /// continues where this one stopped.
    pub durable: String,
    /// Only these subjects, e.g. `orders.demo.order.>`.
    pub subject: String,
    /// Stop after this many events (for scripts and tests).
    pub limit: Option<u64>,
}

/// Prints events as JSON lines `{"subject", "id", "event"}` to `out`,
/// acknowledging each once printed (so a consumer that stops and starts
/// again sees each event at least once, and can drop repeats by `id`).
pub async fn tail(options: &Tail, out: &mut impl Write) -> anyhow::Result<u64> {
    let client = async_nats::connect(&options.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", options.nats_url))?;
    let jetstream = async_nats::jetstream::new(client);
    let stream = jetstream
        .get_stream(&options.stream)
        .await
        .with_context(|| {
            format!(
                "JetStream stream {} (is the relay running?)",
                options.stream
            )
        })?;
    let consumer = stream
        .get_or_create_consumer(
            &options.durable,
            pull::Config {
                durable_name: Some(options.durable.clone()),
                filter_subject: options.subject.clone(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ..pull::Config::default()
            },
        )
        .await
        .with_context(|| {
            format!(
                "consumer {} (a durable name keeps its first subject filter: pick another --durable)",
                options.durable
            )
        })?;
    let mut seen = 0;
    // Batches of what is still wanted, never more: a message pulled is
    // delivered to this consumer, and one not acknowledged would only come
    // back after the ack wait.
    while options.limit.is_none_or(|limit| seen < limit) {
        let wanted = options
            .limit
            .map_or(BATCH, |limit| (limit - seen).min(BATCH as u64) as usize);
        let mut batch = consumer
            .batch()
            .max_messages(wanted)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("consuming: {e}"))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("receiving: {e}"))?;
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.to_string());
            let event: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or(serde_json::Value::Null);
            let line = serde_json::json!({
                "subject": message.subject.as_str(),
                "id": id,
                "event": event,
            });
            writeln!(out, "{line}")?;
            out.flush()?;
            // Confirmed by the server before the next: a tail stopped here
            // starts after this event.
            message
                .double_ack()
                .await
                .map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
            seen += 1;
        }
    }
    Ok(seen)
}
