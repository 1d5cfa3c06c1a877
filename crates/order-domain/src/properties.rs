//! Properties over random command sequences: handling never panics, folding
//! the emitted events reproduces the aggregate's state, a key ends in one
//! order or one abandonment (never both), and the order's life only ever
//! moves forward.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use proptest::prelude::*;

use crate::order::{
    AbandonCheckout, AbandonedBy, CancelledBy, OrderCommand, OrderEvent, PricedLine,
};
use crate::test_support::*;
use crate::{Order, OrderStatus};

fn priced_line() -> impl Strategy<Value = PricedLine> {
    (
        prop::sample::select(vec!["A", "B", "C", "D"]),
        1_i64..=5,
        -10_i64..=1_000,
    )
        .prop_map(|(sku, quantity, price)| line(sku, quantity, price))
}

/// Lines of a checkout that must be placed: distinct SKUs, positive
/// quantities and prices.
fn valid_lines() -> impl Strategy<Value = Vec<PricedLine>> {
    prop::sample::subsequence(vec!["A", "B", "C", "D"], 1..=4)
        .prop_flat_map(|skus| {
            let terms = prop::collection::vec((1_i64..=5, 1_i64..=1_000), skus.len());
            (Just(skus), terms)
        })
        .prop_map(|(skus, terms)| {
            skus.into_iter()
                .zip(terms)
                .map(|(sku, (quantity, price))| line(sku, quantity, price))
                .collect()
        })
}

fn command() -> impl Strategy<Value = OrderCommand> {
    let place = (
        prop::sample::select(vec!["cust-1", "cust-2"]),
        prop::sample::select(vec!["k-1", "k-2"]),
        prop::collection::vec(priced_line(), 0..5),
        prop::option::of(prop::sample::select(vec!["", "ring twice"])),
    )
        .prop_map(|(c, k, lines, n)| OrderCommand::PlaceOrder(checkout_by(c, k, lines, n)));
    let by = prop_oneof![
        Just(CancelledBy::Staff),
        Just(CancelledBy::Customer(customer("cust-1"))),
        Just(CancelledBy::Customer(customer("cust-2"))),
    ];
    let abandon_by = prop_oneof![
        Just(AbandonedBy::Staff),
        Just(AbandonedBy::Customer(customer("cust-1"))),
        Just(AbandonedBy::Customer(customer("cust-2"))),
    ];
    let abandon = (
        abandon_by,
        prop::sample::select(vec!["k-1", "k-2"]),
        -100_i64..1_000,
    )
        .prop_map(|(by, k, s)| {
            OrderCommand::AbandonCheckout(AbandonCheckout {
                tenant: tenant("acme"),
                idempotency_key: key(k),
                by,
                at: at(s),
            })
        });
    prop_oneof![
        3 => place,
        1 => abandon,
        2 => (-100_i64..1_000).prop_map(|s| OrderCommand::MarkPaid { at: at(s) }),
        2 => (-100_i64..1_000).prop_map(|s| OrderCommand::Ship { at: at(s) }),
        2 => (by, -100_i64..1_000).prop_map(|(by, s)| OrderCommand::Cancel { by, at: at(s) }),
        1 => (-100_i64..1_000, -100_i64..1_000).prop_map(|(before, s)| OrderCommand::Expire {
            placed_before: at(before),
            at: at(s),
        }),
    ]
}

/// Runs commands the way cqrs-es does: `handle` writes to a sink that
/// applies each event to the aggregate as it is written.
fn run(commands: Vec<OrderCommand>) -> (Order, Vec<OrderEvent>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut order = Order::default();
        let mut emitted = Vec::new();
        for command in commands {
            let sink = EventSink::<Order>::default();
            let before = order.clone();
            match order.handle(command, &(), &sink).await {
                Ok(()) => emitted.extend(sink.collect().await),
                Err(_) => {
                    assert!(
                        sink.collect().await.is_empty(),
                        "a refused command emitted events"
                    );
                    assert_eq!(order, before, "a refused command changed the order");
                }
            }
        }
        (order, emitted)
    })
}

fn rank(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::Placed => 0,
        OrderStatus::Paid => 1,
        OrderStatus::Shipped => 2,
        OrderStatus::Cancelled | OrderStatus::Expired => 3,
    }
}

proptest! {
    #[test]
    fn folding_the_emitted_events_reproduces_the_order(commands in prop::collection::vec(command(), 0..25)) {
        let (order, events) = run(commands);
        let mut folded = Order::default();
        for event in events {
            folded.apply(event);
        }
        prop_assert_eq!(folded, order);
    }

    #[test]
    fn an_order_is_placed_once_and_only_moves_forward(commands in prop::collection::vec(command(), 0..25)) {
        let (_, events) = run(commands);
        let placed = events.iter().filter(|e| matches!(e, OrderEvent::OrderPlaced(_))).count();
        prop_assert!(placed <= 1);
        if let Some(OrderEvent::CheckoutAbandoned(_)) = events.first() {
            prop_assert_eq!(events.len(), 1, "an abandoned key gets no other event");
            return Ok(());
        }
        if let Some(first) = events.first() {
            prop_assert!(matches!(first, OrderEvent::OrderPlaced(_)));
        }
        prop_assert!(!events.iter().any(|e| matches!(e, OrderEvent::CheckoutAbandoned(_))));
        let cancelled = events.iter().filter(|e| matches!(e, OrderEvent::OrderCancelled(_))).count();
        prop_assert!(cancelled <= 1, "stock must come back at most once");
        let mut order = Order::default();
        let mut last = None::<(u8, chrono::DateTime<chrono::Utc>)>;
        for event in events {
            order.apply(event);
            let details = order.details().unwrap();
            let now = (rank(details.status), details.updated_at);
            if let Some((rank_before, updated_before)) = last {
                prop_assert!(now.0 > rank_before, "status went from rank {} to {}", rank_before, now.0);
                prop_assert!(now.1 >= updated_before, "updated_at went backwards");
            }
            last = Some(now);
        }
    }

    #[test]
    fn a_placed_order_adds_up(lines in valid_lines()) {
        let (order, _) = run(vec![OrderCommand::PlaceOrder(checkout(lines))]);
        // Every generated checkout is valid: it must place an order (an
        // `if let` here let a refused checkout pass without a check).
        let details = order.details();
        prop_assert!(details.is_some(), "a valid checkout placed no order");
        let details = details.unwrap();
        let sum: i64 = details.lines.iter().map(|l| l.line_total).sum();
        prop_assert_eq!(details.total, sum);
        for l in &details.lines {
            prop_assert_eq!(l.line_total, l.unit_price * i64::from(l.quantity));
        }
    }
}
