//! The events of all of the shop's streams, as the projections read them.

use order_domain::order::OrderEvent;
use order_domain::product::ProductEvent;
use order_domain::stock_adjustment::StockAdjustmentEvent;
use order_domain::{IdempotencyKey, Order, Product, StockAdjustment, TenantId};

use cqrs_es::Aggregate;
use serde::Deserialize;

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
    /// Reads a stored payload. Every event type is at version 1; a later
    /// version would be upcast here.
    pub fn decode(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: serde_json::Value,
    ) -> Result<Self, DecodeError> {
        Self::decode_from(aggregate_type, event_type, event_version, payload)
    }

    /// Reads a stored payload from its JSON text, without an intermediate
    /// `serde_json::Value` (the rebuild reads millions of them).
    pub fn decode_text(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: &str,
    ) -> Result<Self, DecodeError> {
        let mut text = serde_json::Deserializer::from_str(payload);
        Self::decode_from(aggregate_type, event_type, event_version, &mut text)
    }

    fn decode_from<'de, D: serde::Deserializer<'de>>(
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: D,
    ) -> Result<Self, DecodeError> {
        if event_version != "1" {
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
            Self::Order(_) => None,
        }
    }

    /// The Idempotency-Key of an event that starts a keyed stream.
    pub fn stream_key(&self) -> Option<&IdempotencyKey> {
        match self {
            Self::Order(OrderEvent::OrderPlaced(placed)) => Some(&placed.idempotency_key),
            Self::StockAdjustment(StockAdjustmentEvent::StockAdjusted(a)) => {
                Some(&a.idempotency_key)
            }
            _ => None,
        }
    }
}
