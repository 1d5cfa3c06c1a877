//! The events table read as an outbox: committed events after a cursor, in
//! the gap-safe order of the projection rebuild, each turned into the
//! message consumers receive.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::PgConnection;

/// Where the relay stands: the last event JetStream acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    pub transaction_id: i64,
    pub position: i64,
}

/// One stored event, as read for publishing (`sql/read_after.sql`, checked
/// against the schema at compile time).
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    xid: i64,
    position: i64,
    tenant_id: String,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
    /// On a cluster: the stream's previous event, when another node gave
    /// it birth (its commit-order coordinates there).
    previous_xid: Option<i64>,
    previous_position: Option<i64>,
    /// Set (both) when its message would exceed the broker's max_payload:
    /// it is published as a placeholder that says where to read it. Read
    /// as NULL from the store.
    parked_size: Option<i64>,
    parked_limit: Option<i64>,
}

/// Why an event is published as a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parked {
    /// The message it would have been, in bytes.
    pub size_bytes: usize,
    /// The broker's limit.
    pub max_payload: usize,
}

/// The body that stands for a parked event: what it is, why it is not
/// here, and where to read it.
#[derive(Debug, Serialize)]
struct Placeholder<'a> {
    tenant: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    position: i64,
    event_type: &'a str,
    event_version: &'a str,
    recorded_at: DateTime<Utc>,
    parked: Parked,
    read_it_from: &'static str,
}

/// The JSON body of every message (docs/EVENTS.md).
#[derive(Debug, Serialize)]
struct Envelope<'a> {
    tenant: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    position: i64,
    event_type: &'a str,
    event_version: &'a str,
    payload: &'a RawValue,
    metadata: &'a RawValue,
    recorded_at: DateTime<Utc>,
}

/// Why an event could not be turned into a message.
#[derive(Debug, thiserror::Error)]
#[error("event at position {position} ({stream}) cannot be published: {reason}")]
pub struct UnpublishableEvent {
    pub position: i64,
    pub stream: String,
    pub reason: String,
}

impl OutboxEvent {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.xid,
            position: self.position,
        }
    }

    /// On a cluster: the stream's previous event, when it was born on
    /// another node (it must be published first).
    pub fn previous_born_elsewhere(&self) -> Option<Cursor> {
        Some(Cursor {
            transaction_id: self.previous_xid?,
            position: self.previous_position?,
        })
    }

    /// An order's event, for the relay's unit tests.
    #[cfg(test)]
    pub(crate) fn of_order(tenant: &str, order: &str, sequence: i64, position: i64) -> Self {
        Self {
            xid: 10,
            position,
            tenant_id: tenant.into(),
            aggregate_type: "Order".into(),
            aggregate_id: order.into(),
            sequence,
            event_type: "OrderPaid".into(),
            event_version: "1".into(),
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
            previous_xid: None,
            previous_position: None,
            parked_size: None,
            parked_limit: None,
        }
    }

    /// The stream (aggregate) the event belongs to: its tenant, type and id.
    pub fn stream(&self) -> (&str, &str, &str) {
        (&self.tenant_id, &self.aggregate_type, &self.aggregate_id)
    }

    /// The stream's kind as it appears in subjects and message ids:
    /// `order`, `product`, `stock_adjustment`.
    fn kind(&self) -> String {
        let mut kind = String::with_capacity(self.aggregate_type.len() + 4);
        for (i, c) in self.aggregate_type.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    kind.push('_');
                }
                kind.push(c.to_ascii_lowercase());
            } else {
                kind.push(c);
            }
        }
        kind
    }

    /// `orders.{tenant}.{kind}.{EventType}`, e.g. `orders.demo.order.OrderPlaced`.
    pub fn subject(&self) -> String {
        format!(
            "orders.{}.{}.{}",
            self.tenant_id,
            self.kind(),
            self.event_type
        )
    }

    /// `{tenant}/{kind}/{stream id}/{sequence}`: the same for every
    /// publication of this event, so JetStream keeps one.
    pub fn message_id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.tenant_id,
            self.kind(),
            self.aggregate_id,
            self.sequence
        )
    }

    /// A generous estimate of the message's size, without building it.
    pub fn estimated_size(&self) -> usize {
        self.payload.len()
            + self.metadata.len()
            + self.tenant_id.len()
            + self.aggregate_type.len()
            + self.aggregate_id.len()
            + self.event_type.len()
            + self.event_version.len()
            + 256
    }

    /// Publish it as a placeholder: its message would be `size_bytes`, over
    /// the broker's `max_payload`.
    pub fn park(&mut self, size_bytes: usize, max_payload: usize) {
        self.parked_size = Some(i64::try_from(size_bytes).unwrap_or(i64::MAX));
        self.parked_limit = Some(i64::try_from(max_payload).unwrap_or(i64::MAX));
    }

    pub fn parked(&self) -> Option<Parked> {
        Some(Parked {
            size_bytes: usize::try_from(self.parked_size?).unwrap_or(usize::MAX),
            max_payload: usize::try_from(self.parked_limit?).unwrap_or(usize::MAX),
        })
    }

    /// The stream's kind and the sequence, as stored (for the parked table).
    pub fn coordinates(&self) -> (&str, &str, &str, i64) {
        (
            &self.tenant_id,
            &self.aggregate_type,
            &self.aggregate_id,
            self.sequence,
        )
    }

    pub fn envelope(&self) -> Result<Bytes, UnpublishableEvent> {
        if let Some(parked) = self.parked() {
            let placeholder = Placeholder {
                tenant: &self.tenant_id,
                aggregate_type: &self.aggregate_type,
                aggregate_id: &self.aggregate_id,
                sequence: self.sequence,
                position: self.position,
                event_type: &self.event_type,
                event_version: &self.event_version,
                recorded_at: self.recorded_at,
                parked,
                read_it_from: "the store's events table: tenant_id, aggregate_type, aggregate_id, sequence (also listed in relay_parked_events)",
            };
            return serde_json::to_vec(&placeholder)
                .map(Bytes::from)
                .map_err(|e| UnpublishableEvent {
                    position: self.position,
                    stream: format!("{}/{}", self.aggregate_type, self.aggregate_id),
                    reason: e.to_string(),
                });
        }
        let unpublishable = |reason: String| UnpublishableEvent {
            position: self.position,
            stream: format!("{}/{}", self.aggregate_type, self.aggregate_id),
            reason,
        };
        let payload: &RawValue = serde_json::from_str(&self.payload)
            .map_err(|e| unpublishable(format!("payload: {e}")))?;
        let metadata: &RawValue = serde_json::from_str(&self.metadata)
            .map_err(|e| unpublishable(format!("metadata: {e}")))?;
        let envelope = Envelope {
            tenant: &self.tenant_id,
            aggregate_type: &self.aggregate_type,
            aggregate_id: &self.aggregate_id,
            sequence: self.sequence,
            position: self.position,
            event_type: &self.event_type,
            event_version: &self.event_version,
            payload,
            metadata,
            recorded_at: self.recorded_at,
        };
        serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .map_err(|e| unpublishable(e.to_string()))
    }

    pub fn recorded_at(&self) -> DateTime<Utc> {
        self.recorded_at
    }
}

/// Up to `limit` committed events after `after`.
pub async fn read_after(
    conn: &mut PgConnection,
    after: Cursor,
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    sqlx::query_file_as!(
        OutboxEvent,
        "sql/read_after.sql",
        after.transaction_id.to_string(),
        after.position,
        limit
    )
    .fetch_all(conn)
    .await
}

/// On a Citus cluster: up to `limit` committed events born on one node
/// (`positions`, its range) after `after`, below `xmin`, the node's
/// snapshot xmin asked just before (`order_store::commit_order`).
pub async fn read_born_after(
    conn: &mut PgConnection,
    after: Cursor,
    xmin: i64,
    positions: (i64, i64),
    limit: i64,
) -> Result<Vec<OutboxEvent>, sqlx::Error> {
    sqlx::query_file_as!(
        OutboxEvent,
        "sql/read_born_after.sql",
        after.transaction_id.to_string(),
        after.position,
        xmin.to_string(),
        positions.0,
        positions.1,
        limit
    )
    .fetch_all(conn)
    .await
}

/// On a Citus cluster: as [`lag`], for the events born on one node.
pub async fn lag_born(
    conn: &mut PgConnection,
    after: Cursor,
    positions: (i64, i64),
) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query_file!(
        "sql/lag_born.sql",
        after.transaction_id.to_string(),
        after.position,
        positions.0,
        positions.1
    )
    .fetch_one(conn)
    .await?;
    Ok((row.events, row.seconds))
}

/// Committed events after `after` (published or not yet readable), and the
/// age in seconds of the oldest of them.
pub async fn lag(conn: &mut PgConnection, after: Cursor) -> Result<(i64, f64), sqlx::Error> {
    let row = sqlx::query_file!(
        "sql/lag.sql",
        after.transaction_id.to_string(),
        after.position
    )
    .fetch_one(conn)
    .await?;
    Ok((row.events, row.seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(aggregate_type: &str, event_type: &str) -> OutboxEvent {
        OutboxEvent {
            xid: 10,
            position: 7,
            tenant_id: "demo".into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: "abc".into(),
            sequence: 2,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: r#"{"OrderPaid":{"paid_at":"2026-11-28T10:00:00Z"}}"#.into(),
            metadata: r#"{"tenant_id":"demo"}"#.into(),
            recorded_at: DateTime::parse_from_rfc3339("2026-11-28T10:00:01Z")
                .unwrap()
                .with_timezone(&Utc),
            previous_xid: None,
            previous_position: None,
            parked_size: None,
            parked_limit: None,
        }
    }

    #[test]
    fn it_names_subjects_and_message_ids_by_tenant_kind_stream_and_sequence() {
        let paid = event("Order", "OrderPaid");
        assert_eq!(paid.subject(), "orders.demo.order.OrderPaid");
        assert_eq!(paid.message_id(), "demo/order/abc/2");
        let moved = event("StockAdjustment", "StockAdjusted");
        assert_eq!(
            moved.subject(),
            "orders.demo.stock_adjustment.StockAdjusted"
        );
    }

    #[test]
    fn the_envelope_carries_the_event_as_stored() {
        let body: serde_json::Value =
            serde_json::from_slice(&event("Order", "OrderPaid").envelope().unwrap()).unwrap();
        assert_eq!(body["tenant"], "demo");
        assert_eq!(body["aggregate_type"], "Order");
        assert_eq!(body["sequence"], 2);
        assert_eq!(body["position"], 7);
        assert_eq!(body["event_version"], "1");
        assert_eq!(
            body["payload"]["OrderPaid"]["paid_at"],
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(body["metadata"]["tenant_id"], "demo");
        assert_eq!(body["recorded_at"], "2026-11-28T10:00:01Z");
    }
}
