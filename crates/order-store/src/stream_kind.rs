//! The three kinds of stream the shop keeps, and how each one's events are
//! read back from the store and handed to the projections.
//!
//! [`StreamKind`] is what the event store needs of an aggregate beyond
//! cqrs-es' `Aggregate`: a way to turn its events into [`ShopEvent`]s (for
//! the projection, without serializing and decoding them again) and back
//! (for events read from the store, through the one decoder that knows
//! every version).

use cqrs_es::Aggregate;
use order_domain::order::OrderEvent;
use order_domain::product::ProductEvent;
use order_domain::stock_adjustment::StockAdjustmentEvent;
use order_domain::{Order, Product, StockAdjustment};

use crate::shop_event::{DecodeError, ShopEvent};

mod sealed {
    pub trait Sealed {}
    impl Sealed for order_domain::Order {}
    impl Sealed for order_domain::Product {}
    impl Sealed for order_domain::StockAdjustment {}
}

/// An aggregate stored as a stream of events: [`Order`], [`Product`],
/// [`StockAdjustment`] (sealed: the store knows no other).
pub trait StreamKind: sealed::Sealed + Aggregate<Services = ()> + Clone {
    fn to_shop_event(event: &Self::Event) -> ShopEvent;

    /// The event, if `event` is one of this kind's.
    fn from_shop_event(event: ShopEvent) -> Option<Self::Event>;

    /// Reads a stored event of this kind (any version the decoder knows).
    fn decode(
        event_type: &str,
        event_version: &str,
        payload: &str,
    ) -> Result<Self::Event, DecodeError> {
        let event = ShopEvent::decode_text(Self::TYPE, event_type, event_version, payload)?;
        Self::from_shop_event(event)
            .ok_or_else(|| DecodeError::UnknownAggregateType(Self::TYPE.to_owned()))
    }
}

impl StreamKind for Order {
    fn to_shop_event(event: &OrderEvent) -> ShopEvent {
        ShopEvent::Order(event.clone())
    }

    fn from_shop_event(event: ShopEvent) -> Option<OrderEvent> {
        match event {
            ShopEvent::Order(event) => Some(event),
            _ => None,
        }
    }
}

impl StreamKind for Product {
    fn to_shop_event(event: &ProductEvent) -> ShopEvent {
        ShopEvent::Product(event.clone())
    }

    fn from_shop_event(event: ShopEvent) -> Option<ProductEvent> {
        match event {
            ShopEvent::Product(event) => Some(event),
            _ => None,
        }
    }
}

impl StreamKind for StockAdjustment {
    fn to_shop_event(event: &StockAdjustmentEvent) -> ShopEvent {
        ShopEvent::StockAdjustment(event.clone())
    }

    fn from_shop_event(event: ShopEvent) -> Option<StockAdjustmentEvent> {
        match event {
            ShopEvent::StockAdjustment(event) => Some(event),
            _ => None,
        }
    }
}
