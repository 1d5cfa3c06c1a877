//! Old versions of events, brought up to today's shape as they are read.
//!
//! Events are never rewritten: an event stored at version 1 stays version
//! 1 in the table for ever. Whoever reads it (loading a stream for a
//! command, the rebuild, `--verify`) goes through [`ShopEvent::decode`],
//! which runs the upcasters here over the stored JSON until it is at the
//! version today's types read. Each upcaster is a cqrs-es
//! [`EventUpcaster`]: it names the (event type, version) it reads and
//! returns the next version.
//!
//! To change an event (docs/EVENTS.md, "Changing an event"): bump its
//! `event_version` in the domain, add an upcaster from the old version
//! here, list it in [`UPCASTERS`], and record a fixture history of the old
//! version (tests/fixtures/) before the change lands.
//!
//! [`ShopEvent::decode`]: crate::ShopEvent::decode

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use order_domain::{Order, OrderChannel};

use cqrs_es::Aggregate;

/// `OrderPlaced` 1 -> 2: the order gained the channel its checkout came
/// from. Version 1 did not record it, and it cannot be known now:
/// `unrecorded`.
#[derive(Debug, Clone, Copy)]
pub struct OrderPlacedRecordsItsChannel;

impl EventUpcaster for OrderPlacedRecordsItsChannel {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == "OrderPlaced" && event_version == "1"
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        if let Some(placed) = event
            .payload
            .get_mut("OrderPlaced")
            .and_then(|placed| placed.as_object_mut())
        {
            placed
                .entry("channel")
                .or_insert_with(|| OrderChannel::Unrecorded.as_str().into());
        }
        event.event_version = "2".to_owned();
        event
    }
}

/// Every upcaster, by aggregate type, in the order they apply.
pub(crate) fn upcasters_of(aggregate_type: &str) -> &'static [&'static dyn EventUpcaster] {
    match aggregate_type {
        Order::TYPE => &[&OrderPlacedRecordsItsChannel],
        _ => &[],
    }
}

/// The upcasters of `aggregate_type`, in the order they apply, as cqrs-es'
/// `PersistedEventStore::with_upcasters` takes them: how another cqrs-es
/// application reads old versions of this store's events
/// (`postgres_es_reader.rs`).
pub fn upcasters_for(aggregate_type: &str) -> Vec<Box<dyn EventUpcaster>> {
    upcasters_of(aggregate_type)
        .iter()
        .map(|upcaster| Box::new(Delegate(*upcaster)) as Box<dyn EventUpcaster>)
        .collect()
}

/// An upcaster of the (static) registry, owned, as cqrs-es keeps them.
struct Delegate(&'static dyn EventUpcaster);

impl EventUpcaster for Delegate {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        self.0.can_upcast(event_type, event_version)
    }

    fn upcast(&self, event: SerializedEvent) -> SerializedEvent {
        self.0.upcast(event)
    }
}

/// True when an event at this version must be upcast before it is read.
pub(crate) fn needs_upcasting(aggregate_type: &str, event_type: &str, event_version: &str) -> bool {
    upcasters_of(aggregate_type)
        .iter()
        .any(|upcaster| upcaster.can_upcast(event_type, event_version))
}

/// Runs every upcaster that applies, in turn, until none does: the event at
/// the newest version there is an upcaster for.
pub(crate) fn upcast(mut event: SerializedEvent) -> SerializedEvent {
    let upcasters = upcasters_of(&event.aggregate_type);
    while let Some(upcaster) = upcasters
        .iter()
        .find(|upcaster| upcaster.can_upcast(&event.event_type, &event.event_version))
    {
        event = upcaster.upcast(event);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(event_type: &str, version: &str, payload: serde_json::Value) -> SerializedEvent {
        SerializedEvent {
            aggregate_id: "o".into(),
            sequence: 1,
            aggregate_type: Order::TYPE.into(),
            event_type: event_type.into(),
            event_version: version.into(),
            payload,
            metadata: json!({}),
        }
    }

    #[test]
    fn it_gives_a_version_1_order_placed_the_unrecorded_channel() {
        let event = upcast(stored(
            "OrderPlaced",
            "1",
            json!({"OrderPlaced": {"total": 5}}),
        ));
        assert_eq!(event.event_version, "2");
        assert_eq!(
            event.payload,
            json!({"OrderPlaced": {"total": 5, "channel": "unrecorded"}})
        );
    }

    #[test]
    fn it_leaves_current_versions_and_other_events_alone() {
        let current = json!({"OrderPlaced": {"channel": "shop"}});
        let event = upcast(stored("OrderPlaced", "2", current.clone()));
        assert_eq!(
            (event.event_version.as_str(), event.payload),
            ("2", current)
        );
        let paid = json!({"OrderPaid": {"paid_at": "2026-11-28T10:00:00Z"}});
        let event = upcast(stored("OrderPaid", "1", paid.clone()));
        assert_eq!((event.event_version.as_str(), event.payload), ("1", paid));
        assert!(!needs_upcasting(Order::TYPE, "OrderPaid", "1"));
        assert!(needs_upcasting(Order::TYPE, "OrderPlaced", "1"));
        assert!(!needs_upcasting(Order::TYPE, "CheckoutAbandoned", "1"));
        assert!(!needs_upcasting("Product", "OrderPlaced", "1"));
    }
}
