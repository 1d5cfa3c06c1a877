//! The events of all of the shop's streams, as the projections read them.

use order_domain::order::OrderEvent;
use order_domain::product::ProductEvent;
use order_domain::stock_adjustment::StockAdjustmentEvent;
use order_domain::{IdempotencyKey, Order, Product, StockAdjustment, TenantId};

use cqrs_es::persist::SerializedEvent;
use cqrs_es::Aggregate;
use serde::Deserialize;

use crate::event_upcasters;

/// The version of an event type this code reads without upcasting (and
/// writes).
fn current_version(aggregate_type: &str, event_type: &str) -> &'static str {
    match aggregate_type {
        Order::TYPE => OrderEvent::current_version(event_type),
        _ => "1",
    }
}

/// One event of any stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ShopEvent {
    Order(OrderEvent),
    Product(ProductEvent),
    StockAdjustment(StockAdjustmentEvent),
}

/// An event with the stream coordinates the projections need.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub aggregate_id: String,
    pub sequence: i64,
    pub tenant: TenantId,
    pub event: ShopEvent,
}

/// Why a stored event could not be turned back into a [`ShopEvent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregateType(String),
    #[error("unsupported event version {version:?} of {event_type}")]
    UnsupportedVersion { event_type: String, version: String },
    #[error("payload does not match {event_type}: {reason}")]
    BadPayload { event_type: String, reason: String },
}

impl ShopEvent {
    /// Reads a stored payload of any version this code knows: today's are
    /// read as they are, older ones are upcast first (`event_upcasters.rs`).
    pub fn decode(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        if event_upcasters::needs_upcasting(aggregate_type, event_type, event_version) {
            return Self::decode_old(aggregate_type, event_type, event_version, payload);
        }
        Self::decode_from(aggregate_type, event_type, event_version, payload)
    }

    /// Reads a stored payload from its JSON text, without an intermediate
    /// `serde_json::Value` when it is at today's version (the rebuild reads
    /// millions of them).
    pub fn decode_text(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: &str,
    ) -> Result<Self, DecodeError> {
        if event_upcasters::needs_upcasting(aggregate_type, event_type, event_version) {
            let payload = serde_json::from_str(payload).map_err(|e| DecodeError::BadPayload {
                event_type: event_type.to_owned(),
                reason: e.to_string(),
            })?;
            return Self::decode_old(aggregate_type, event_type, event_version, payload);
        }
        let mut text = serde_json::Deserializer::from_str(payload);
        Self::decode_from(aggregate_type, event_type, event_version, &mut text)
    }

    /// An event stored at an older version: upcast, then read.
    fn decode_old(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        let upcast = event_upcasters::upcast(SerializedEvent {
            aggregate_id: String::new(),
            sequence: 0,
            aggregate_type: aggregate_type.to_owned(),
            event_type: event_type.to_owned(),
            event_version: event_version.to_owned(),
            payload,
            metadata: serde_json::Value::Null,
        });
        Self::decode_from(
            aggregate_type,
            event_type,
            &upcast.event_version,
            upcast.payload,
        )
    }

    /// Reads an event at today's version.
    fn decode_from<'de, D: serde::Deserializer<'de>>(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: D,
    ) -> Result<Self, DecodeError> {
        if event_version != current_version(aggregate_type, event_type) {
            return Err(DecodeError::UnsupportedVersion {
                event_type: event_type.to_owned(),
                version: event_version.to_owned(),
            });
        }
        let bad = |e: D::Error| DecodeError::BadPayload {
            event_type: event_type.to_owned(),
            reason: e.to_string(),
        };
        match aggregate_type {
            Order::TYPE => OrderEvent::deserialize(payload)
                .map(Self::Order)
                .map_err(bad),
            Product::TYPE => ProductEvent::deserialize(payload)
                .map(Self::Product)
                .map_err(bad),
            StockAdjustment::TYPE => StockAdjustmentEvent::deserialize(payload)
                .map(Self::StockAdjustment)
                .map_err(bad),
            other => Err(DecodeError::UnknownAggregateType(other.to_owned())),
        }
    }

    /// The tenant named in the payload, for events that carry it.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Order(OrderEvent::OrderPlaced(placed)) => Some(&placed.tenant),
            Self::Product(ProductEvent::ProductDefined(d) | ProductEvent::ProductRedefined(d)) => {
                Some(&d.tenant)
            }
            Self::StockAdjustment(StockAdjustmentEvent::StockAdjusted(a)) => Some(&a.tenant),
            Self::Order(OrderEvent::CheckoutAbandoned(abandoned)) => Some(&abandoned.tenant),
            Self::Order(_) => None,
        }
    }

    /// The Idempotency-Key of an event that starts a keyed stream (stored in
    /// `events.idempotency_key`, where the store lets one stream per key in:
    /// an order's `OrderPlaced` and a `CheckoutAbandoned` compete for it).
    pub fn stream_key(&self) -> Option<&IdempotencyKey> {
        match self {
            Self::Order(OrderEvent::OrderPlaced(placed)) => Some(&placed.idempotency_key),
            Self::Order(OrderEvent::CheckoutAbandoned(abandoned)) => {
                Some(&abandoned.idempotency_key)
            }
            Self::StockAdjustment(StockAdjustmentEvent::StockAdjusted(a)) => {
                Some(&a.idempotency_key)
            }
            _ => None,
        }
    }
}
