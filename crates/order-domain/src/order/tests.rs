//! Given/when/then: every command in every state of an order.

use cqrs_es::test::TestFramework;

use super::*;
use crate::test_support::*;
use crate::{OrderChannel, OrderId, OrderNumber};
use cqrs_es::DomainEvent;

type OrderTest = TestFramework<Order>;

fn given_placed() -> Vec<OrderEvent> {
    vec![placed(checkout(vec![
        line("A", 2, 125_000),
        line("B", 1, 5_000),
    ]))]
}

fn given_paid() -> Vec<OrderEvent> {
    let mut events = given_placed();
    events.push(OrderEvent::OrderPaid { paid_at: at(60) });
    events
}

fn given_shipped() -> Vec<OrderEvent> {
    let mut events = given_paid();
    events.push(OrderEvent::OrderShipped {
        shipped_at: at(120),
    });
    events
}

/// The stock of [`given_placed`]'s lines, going back.
fn restocked_lines() -> Vec<StockLine> {
    vec![
        StockLine {
            sku: sku("A"),
            quantity: qty(2),
        },
        StockLine {
            sku: sku("B"),
            quantity: qty(1),
        },
    ]
}

fn cancelled_by(by: CancelledBy, seconds: i64) -> OrderEvent {
    OrderEvent::OrderCancelled(OrderCancelled {
        by,
        cancelled_at: at(seconds),
        restocked: restocked_lines(),
    })
}

fn given_cancelled() -> Vec<OrderEvent> {
    let mut events = given_placed();
    events.push(cancelled_by(CancelledBy::Customer(customer("cust-1")), 30));
    events
}

fn pay(seconds: i64) -> OrderCommand {
    OrderCommand::MarkPaid { at: at(seconds) }
}

fn ship(seconds: i64) -> OrderCommand {
    OrderCommand::Ship { at: at(seconds) }
}

fn cancel_by_customer(id: &str, seconds: i64) -> OrderCommand {
    OrderCommand::Cancel {
        by: CancelledBy::Customer(customer(id)),
        at: at(seconds),
    }
}

fn cancel_by_staff(seconds: i64) -> OrderCommand {
    OrderCommand::Cancel {
        by: CancelledBy::Staff,
        at: at(seconds),
    }
}

fn invalid(from: OrderStatus, action: OrderAction) -> OrderError {
    OrderError::InvalidTransition { from, action }
}

// --- placing ---------------------------------------------------------------

#[test]
fn it_places_an_order_on_the_first_checkout() {
    let place = checkout(vec![line("A", 2, 125_000), line("B", 1, 5_000)]);
    let id = OrderId::for_checkout(&tenant("acme"), &key("k-1"));
    let expected = OrderEvent::OrderPlaced(OrderPlaced {
        order_id: id,
        tenant: tenant("acme"),
        idempotency_key: key("k-1"),
        order_number: OrderNumber::for_order(id),
        customer: customer("cust-1"),
        lines: vec![
            OrderLine {
                sku: sku("A"),
                name: name("Product A"),
                quantity: qty(2),
                unit_price: 125_000,
                line_total: 250_000,
            },
            OrderLine {
                sku: sku("B"),
                name: name("Product B"),
                quantity: qty(1),
                unit_price: 5_000,
                line_total: 5_000,
            },
        ],
        currency: currency("PYG"),
        total: 255_000,
        note: None,
        fingerprint: place.fingerprint.clone(),
        placed_at: at(0),
        channel: OrderChannel::Api,
    });
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(place))
        .then_expect_events(vec![expected]);
}

#[test]
fn it_records_the_channel_a_checkout_came_from() {
    let place = PlaceOrder {
        channel: OrderChannel::Shop,
        ..checkout(vec![line("A", 1, 125_000)])
    };
    let events = OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(place))
        .inspect_result()
        .unwrap();
    match events.as_slice() {
        [OrderEvent::OrderPlaced(placed)] => assert_eq!(placed.channel, OrderChannel::Shop),
        other => panic!("expected one OrderPlaced, got {other:?}"),
    }
}

#[test]
fn it_replays_a_retry_from_another_channel_as_the_same_checkout() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(PlaceOrder {
            channel: OrderChannel::Shop,
            ..checkout(vec![line("A", 2, 125_000), line("B", 1, 5_000)])
        }))
        .then_expect_events(vec![]);
}

#[test]
fn it_writes_order_placed_at_version_2_and_the_other_order_events_at_version_1() {
    let placed = placed(checkout(vec![line("A", 1, 1)]));
    assert_eq!(placed.event_version(), "2");
    assert_eq!(
        OrderEvent::OrderPaid { paid_at: at(1) }.event_version(),
        "1"
    );
    assert_eq!(
        OrderEvent::OrderShipped { shipped_at: at(1) }.event_version(),
        "1"
    );
}

#[test]
fn it_replays_an_identical_checkout_without_new_events() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 2, 125_000),
            line("B", 1, 5_000),
        ])))
        .then_expect_events(vec![]);
}

#[test]
fn it_replays_a_checkout_whose_lines_come_in_another_order() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("B", 1, 5_000),
            line("A", 2, 125_000),
        ])))
        .then_expect_events(vec![]);
}

#[test]
fn it_replays_a_checkout_even_after_the_catalogue_price_changed() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 2, 999),
            line("B", 1, 1),
        ])))
        .then_expect_events(vec![]);
}

#[test]
fn it_replays_a_checkout_of_an_order_that_has_moved_on() {
    OrderTest::with(())
        .given(given_shipped())
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 2, 125_000),
            line("B", 1, 5_000),
        ])))
        .then_expect_events(vec![]);
}

#[test]
fn it_rejects_a_reused_key_with_other_lines() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout(vec![line(
            "A", 2, 125_000,
        )])))
        .then_expect_error(OrderError::IdempotencyKeyReused);
}

#[test]
fn it_rejects_a_reused_key_with_other_quantities() {
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 3, 125_000),
            line("B", 1, 5_000),
        ])))
        .then_expect_error(OrderError::IdempotencyKeyReused);
}

#[test]
fn it_rejects_a_reused_key_from_another_customer() {
    let lines = vec![line("A", 2, 125_000), line("B", 1, 5_000)];
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout_by(
            "cust-2", "k-1", lines, None,
        )))
        .then_expect_error(OrderError::IdempotencyKeyReused);
}

#[test]
fn it_rejects_a_reused_key_with_another_note() {
    let lines = vec![line("A", 2, 125_000), line("B", 1, 5_000)];
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout_by(
            "cust-1",
            "k-1",
            lines,
            Some("ring twice"),
        )))
        .then_expect_error(OrderError::IdempotencyKeyReused);
}

#[test]
fn it_treats_an_empty_note_as_no_note() {
    let lines = vec![line("A", 2, 125_000), line("B", 1, 5_000)];
    OrderTest::with(())
        .given(given_placed())
        .when(OrderCommand::PlaceOrder(checkout_by(
            "cust-1",
            "k-1",
            lines,
            Some(""),
        )))
        .then_expect_events(vec![]);
}

#[test]
fn it_keeps_the_note_of_the_checkout() {
    let event = placed(checkout_by(
        "cust-1",
        "k-9",
        vec![line("A", 1, 10)],
        Some("leave at door"),
    ));
    let OrderEvent::OrderPlaced(placed) = event else {
        panic!("expected OrderPlaced")
    };
    assert_eq!(placed.note, Some(note("leave at door")));
}

#[test]
fn it_refuses_an_order_without_lines() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(vec![])))
        .then_expect_error(OrderError::NoLines);
}

#[test]
fn it_refuses_more_than_a_hundred_lines() {
    let lines = (0..101).map(|i| line(&format!("S{i}"), 1, 1)).collect();
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(lines)))
        .then_expect_error(OrderError::TooManyLines {
            count: 101,
            max: 100,
        });
}

#[test]
fn it_accepts_exactly_a_hundred_lines() {
    let lines = (0..100).map(|i| line(&format!("S{i}"), 1, 1)).collect();
    let result = OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(lines)))
        .inspect_result();
    assert_eq!(result.map(|events| events.len()), Ok(1));
}

#[test]
fn it_refuses_the_same_sku_on_two_lines() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 1, 1),
            line("A", 2, 1),
        ])))
        .then_expect_error(OrderError::DuplicateSku { sku: sku("A") });
}

#[test]
fn it_refuses_a_line_priced_in_another_currency() {
    let mut euro_line = line("B", 1, 100);
    euro_line.unit_price = crate::Money::new(100, currency("EUR"));
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 1, 1),
            euro_line,
        ])))
        .then_expect_error(OrderError::CurrencyMismatch {
            sku: sku("B"),
            expected: currency("PYG"),
            found: currency("EUR"),
        });
}

#[test]
fn it_refuses_a_negative_unit_price() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(vec![line("A", 1, -5)])))
        .then_expect_error(OrderError::NegativePrice { sku: sku("A") });
}

#[test]
fn it_refuses_a_total_too_large_to_represent() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::PlaceOrder(checkout(vec![
            line("A", 10_000, i64::MAX / 10_000),
            line("B", 10_000, i64::MAX / 10_000),
        ])))
        .then_expect_error(OrderError::AmountOverflow);
}

#[test]
fn it_records_times_to_the_microsecond_like_the_store() {
    let mut place = checkout(vec![line("A", 1, 1)]);
    place.placed_at = at(0) + chrono::Duration::nanoseconds(1_234_567);
    let OrderEvent::OrderPlaced(placed) = placed(place) else {
        panic!("expected OrderPlaced")
    };
    assert_eq!(
        placed.placed_at,
        at(0) + chrono::Duration::microseconds(1_234)
    );
}

// --- paying and shipping ---------------------------------------------------

#[test]
fn it_marks_a_placed_order_paid() {
    OrderTest::with(())
        .given(given_placed())
        .when(pay(60))
        .then_expect_events(vec![OrderEvent::OrderPaid { paid_at: at(60) }]);
}

#[test]
fn it_treats_paying_a_paid_order_as_done() {
    OrderTest::with(())
        .given(given_paid())
        .when(pay(90))
        .then_expect_events(vec![]);
}

#[test]
fn it_treats_paying_a_shipped_order_as_done() {
    OrderTest::with(())
        .given(given_shipped())
        .when(pay(200))
        .then_expect_events(vec![]);
}

#[test]
fn it_refuses_to_pay_an_order_cancelled_before_payment() {
    OrderTest::with(())
        .given(given_cancelled())
        .when(pay(60))
        .then_expect_error(invalid(OrderStatus::Cancelled, OrderAction::Pay));
}

#[test]
fn it_ships_a_paid_order() {
    OrderTest::with(())
        .given(given_paid())
        .when(ship(120))
        .then_expect_events(vec![OrderEvent::OrderShipped {
            shipped_at: at(120),
        }]);
}

#[test]
fn it_refuses_to_ship_an_unpaid_order() {
    OrderTest::with(())
        .given(given_placed())
        .when(ship(60))
        .then_expect_error(invalid(OrderStatus::Placed, OrderAction::Ship));
}

#[test]
fn it_treats_shipping_a_shipped_order_as_done() {
    OrderTest::with(())
        .given(given_shipped())
        .when(ship(300))
        .then_expect_events(vec![]);
}

#[test]
fn it_refuses_to_ship_a_cancelled_order() {
    OrderTest::with(())
        .given(given_cancelled())
        .when(ship(60))
        .then_expect_error(invalid(OrderStatus::Cancelled, OrderAction::Ship));
}

#[test]
fn it_never_moves_an_orders_clock_backwards() {
    // A second server whose clock is behind pays the order "before" it was placed.
    OrderTest::with(())
        .given(given_placed())
        .when(pay(-3_600))
        .then_expect_events(vec![OrderEvent::OrderPaid { paid_at: at(0) }]);
}

// --- cancelling ------------------------------------------------------------

#[test]
fn it_lets_a_customer_cancel_their_placed_order_and_restocks_every_line() {
    OrderTest::with(())
        .given(given_placed())
        .when(cancel_by_customer("cust-1", 30))
        .then_expect_events(vec![cancelled_by(
            CancelledBy::Customer(customer("cust-1")),
            30,
        )]);
}

#[test]
fn it_lets_staff_cancel_a_placed_order() {
    OrderTest::with(())
        .given(given_placed())
        .when(cancel_by_staff(30))
        .then_expect_events(vec![cancelled_by(CancelledBy::Staff, 30)]);
}

#[test]
fn it_lets_staff_cancel_a_paid_order() {
    OrderTest::with(())
        .given(given_paid())
        .when(cancel_by_staff(90))
        .then_expect_events(vec![cancelled_by(CancelledBy::Staff, 90)]);
}

#[test]
fn it_refuses_a_customer_cancelling_a_paid_order() {
    OrderTest::with(())
        .given(given_paid())
        .when(cancel_by_customer("cust-1", 90))
        .then_expect_error(invalid(OrderStatus::Paid, OrderAction::Cancel));
}

#[test]
fn it_refuses_to_cancel_a_shipped_order_whoever_asks() {
    OrderTest::with(())
        .given(given_shipped())
        .when(cancel_by_staff(200))
        .then_expect_error(invalid(OrderStatus::Shipped, OrderAction::Cancel));
    OrderTest::with(())
        .given(given_shipped())
        .when(cancel_by_customer("cust-1", 200))
        .then_expect_error(invalid(OrderStatus::Shipped, OrderAction::Cancel));
}

#[test]
fn it_treats_cancelling_twice_as_done_so_stock_comes_back_once() {
    OrderTest::with(())
        .given(given_cancelled())
        .when(cancel_by_customer("cust-1", 40))
        .then_expect_events(vec![]);
    OrderTest::with(())
        .given(given_cancelled())
        .when(cancel_by_staff(40))
        .then_expect_events(vec![]);
}

#[test]
fn it_hides_an_order_from_another_customer_who_tries_to_cancel_it() {
    OrderTest::with(())
        .given(given_placed())
        .when(cancel_by_customer("cust-2", 30))
        .then_expect_error(OrderError::NotYourOrder);
    OrderTest::with(())
        .given(given_cancelled())
        .when(cancel_by_customer("cust-2", 40))
        .then_expect_error(OrderError::NotYourOrder);
}

#[test]
fn it_treats_paying_an_order_paid_then_cancelled_as_done() {
    let mut events = given_paid();
    events.push(cancelled_by(CancelledBy::Staff, 90));
    OrderTest::with(())
        .given(events)
        .when(pay(100))
        .then_expect_events(vec![]);
}

#[test]
fn it_refuses_every_transition_of_an_order_never_placed() {
    for command in [
        pay(1),
        ship(1),
        cancel_by_staff(1),
        cancel_by_customer("cust-1", 1),
    ] {
        OrderTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(OrderError::OrderNotFound);
    }
}

// --- state -------------------------------------------------------------------

#[test]
fn it_shows_the_current_state_after_each_event() {
    let mut order = Order::default();
    assert!(order.details().is_none());
    for event in given_paid() {
        cqrs_es::Aggregate::apply(&mut order, event);
    }
    let details = order.details().unwrap();
    assert_eq!(details.status, OrderStatus::Paid);
    assert_eq!(details.total, 255_000);
    assert_eq!(details.placed_at, at(0));
    assert_eq!(details.updated_at, at(60));
    assert_eq!(details.paid_at, Some(at(60)));
}

#[test]
fn it_round_trips_events_through_json() {
    for event in given_shipped().into_iter().chain(given_cancelled()) {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
    }
}

#[test]
fn it_answers_a_retry_from_the_stream_without_prices() {
    let mut order = Order::default();
    let asked = |customer_id: &str, lines: Vec<RequestedLine>| {
        Checkout::new(key("k-1"), customer(customer_id), lines, None, at(5)).unwrap()
    };
    let requested = |code: &str, n: i64| RequestedLine {
        sku: sku(code),
        quantity: qty(n),
    };
    let same = asked("cust-1", vec![requested("B", 1), requested("A", 2)]);
    assert_eq!(
        order.check_retry(&tenant("acme"), &same).unwrap_err(),
        OrderError::OrderNotFound
    );
    for event in given_placed() {
        cqrs_es::Aggregate::apply(&mut order, event);
    }
    assert_eq!(
        order.check_retry(&tenant("acme"), &same).unwrap().total,
        255_000
    );
    let other = asked("cust-2", vec![requested("A", 2)]);
    assert_eq!(
        order.check_retry(&tenant("acme"), &other).unwrap_err(),
        OrderError::IdempotencyKeyReused
    );
}

// --- settling: abandoning a checkout's key ------------------------------------

fn abandon_by(by: AbandonedBy, seconds: i64) -> OrderCommand {
    OrderCommand::AbandonCheckout(AbandonCheckout {
        tenant: tenant("acme"),
        idempotency_key: key("k-1"),
        by,
        at: at(seconds),
    })
}

fn by_customer(id: &str) -> AbandonedBy {
    AbandonedBy::Customer(customer(id))
}

fn abandoned(by: AbandonedBy, seconds: i64) -> OrderEvent {
    OrderEvent::CheckoutAbandoned(CheckoutAbandoned {
        order_id: OrderId::for_checkout(&tenant("acme"), &key("k-1")),
        tenant: tenant("acme"),
        idempotency_key: key("k-1"),
        by,
        abandoned_at: at(seconds),
    })
}

fn given_abandoned_by(by: AbandonedBy) -> Vec<OrderEvent> {
    vec![abandoned(by, 10)]
}

fn the_placed_checkout() -> OrderCommand {
    OrderCommand::PlaceOrder(checkout(vec![line("A", 2, 125_000), line("B", 1, 5_000)]))
}

#[test]
fn it_abandons_an_unused_key_for_its_customer_in_the_stream_the_order_would_have() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(abandon_by(by_customer("cust-1"), 10))
        .then_expect_events(vec![abandoned(by_customer("cust-1"), 10)]);
}

#[test]
fn it_abandons_an_unused_key_for_staff() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(abandon_by(AbandonedBy::Staff, 10))
        .then_expect_events(vec![abandoned(AbandonedBy::Staff, 10)]);
}

#[test]
fn it_leaves_a_placed_order_alone_when_its_customer_abandons_the_key() {
    OrderTest::with(())
        .given(given_placed())
        .when(abandon_by(by_customer("cust-1"), 10))
        .then_expect_events(vec![]);
}

#[test]
fn it_leaves_a_placed_order_alone_when_staff_abandon_the_key() {
    OrderTest::with(())
        .given(given_shipped())
        .when(abandon_by(AbandonedBy::Staff, 500))
        .then_expect_events(vec![]);
}

#[test]
fn it_hides_a_placed_order_from_another_customer_who_abandons_its_key() {
    OrderTest::with(())
        .given(given_placed())
        .when(abandon_by(by_customer("cust-2"), 10))
        .then_expect_error(OrderError::NotYourOrder);
}

#[test]
fn it_never_abandons_a_key_whose_order_was_placed_whatever_became_of_the_order() {
    for given in [
        given_placed(),
        given_paid(),
        given_shipped(),
        given_cancelled(),
    ] {
        for by in [by_customer("cust-1"), AbandonedBy::Staff] {
            OrderTest::with(())
                .given(given.clone())
                .when(abandon_by(by, 500))
                .then_expect_events(vec![]);
        }
        OrderTest::with(())
            .given(given)
            .when(abandon_by(by_customer("cust-2"), 500))
            .then_expect_error(OrderError::NotYourOrder);
    }
}

#[test]
fn it_answers_abandoning_an_abandoned_key_again_with_no_new_event() {
    for (first, again) in [
        (by_customer("cust-1"), by_customer("cust-1")),
        (by_customer("cust-1"), AbandonedBy::Staff),
        (AbandonedBy::Staff, AbandonedBy::Staff),
        (AbandonedBy::Staff, by_customer("cust-2")),
    ] {
        OrderTest::with(())
            .given(given_abandoned_by(first))
            .when(abandon_by(again, 20))
            .then_expect_events(vec![]);
    }
}

#[test]
fn it_hides_a_key_one_customer_abandoned_from_another() {
    OrderTest::with(())
        .given(given_abandoned_by(by_customer("cust-1")))
        .when(abandon_by(by_customer("cust-2"), 20))
        .then_expect_error(OrderError::NotYourOrder);
}

#[test]
fn it_refuses_a_checkout_with_a_key_its_customer_abandoned() {
    OrderTest::with(())
        .given(given_abandoned_by(by_customer("cust-1")))
        .when(the_placed_checkout())
        .then_expect_error(OrderError::CheckoutAbandoned);
}

#[test]
fn it_refuses_every_customers_checkout_with_a_key_staff_abandoned() {
    OrderTest::with(())
        .given(given_abandoned_by(AbandonedBy::Staff))
        .when(the_placed_checkout())
        .then_expect_error(OrderError::CheckoutAbandoned);
    OrderTest::with(())
        .given(given_abandoned_by(AbandonedBy::Staff))
        .when(OrderCommand::PlaceOrder(checkout_by(
            "cust-2",
            "k-1",
            vec![line("A", 1, 1)],
            None,
        )))
        .then_expect_error(OrderError::CheckoutAbandoned);
}

#[test]
fn it_answers_another_customers_checkout_with_an_abandoned_key_as_a_reused_key() {
    OrderTest::with(())
        .given(given_abandoned_by(by_customer("cust-1")))
        .when(OrderCommand::PlaceOrder(checkout_by(
            "cust-2",
            "k-1",
            vec![line("A", 2, 125_000), line("B", 1, 5_000)],
            None,
        )))
        .then_expect_error(OrderError::IdempotencyKeyReused);
}

#[test]
fn it_has_no_order_to_pay_ship_or_cancel_under_an_abandoned_key() {
    for command in [
        pay(30),
        ship(30),
        cancel_by_staff(30),
        cancel_by_customer("cust-1", 30),
    ] {
        OrderTest::with(())
            .given(given_abandoned_by(by_customer("cust-1")))
            .when(command)
            .then_expect_error(OrderError::OrderNotFound);
    }
}

#[test]
fn it_records_the_abandonment_time_to_the_microsecond() {
    let events = OrderTest::with(())
        .given_no_previous_events()
        .when(OrderCommand::AbandonCheckout(AbandonCheckout {
            tenant: tenant("acme"),
            idempotency_key: key("k-1"),
            by: AbandonedBy::Staff,
            at: at(0) + chrono::Duration::nanoseconds(7_654_321),
        }))
        .inspect_result()
        .unwrap();
    match events.as_slice() {
        [OrderEvent::CheckoutAbandoned(abandoned)] => assert_eq!(
            abandoned.abandoned_at,
            at(0) + chrono::Duration::microseconds(7_654)
        ),
        other => panic!("expected one CheckoutAbandoned, got {other:?}"),
    }
}

#[test]
fn it_says_what_became_of_the_key() {
    let mut order = Order::default();
    assert_eq!(order.settled(), None);
    for event in given_abandoned_by(by_customer("cust-1")) {
        cqrs_es::Aggregate::apply(&mut order, event);
    }
    let Some(SettledCheckout::Abandoned(abandoned)) = order.settled() else {
        panic!("abandoned: {:?}", order.settled())
    };
    assert_eq!(abandoned.owner(), Some(&customer("cust-1")));
    assert!(abandoned.is_visible_to(&customer("cust-1")));
    assert!(!abandoned.is_visible_to(&customer("cust-2")));
    assert!(
        order.details().is_none(),
        "an abandoned key is not an order"
    );
    let mut placed = Order::default();
    for event in given_paid() {
        cqrs_es::Aggregate::apply(&mut placed, event);
    }
    assert!(matches!(
        placed.settled(),
        Some(SettledCheckout::Placed(details)) if details.status == OrderStatus::Paid
    ));
}

#[test]
fn it_writes_checkout_abandoned_at_version_1_and_round_trips_it() {
    let event = abandoned(AbandonedBy::Staff, 1);
    assert_eq!(event.event_type(), "CheckoutAbandoned");
    assert_eq!(event.event_version(), "1");
    for event in [event, abandoned(by_customer("cust-1"), 2)] {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
    }
}

// Expiry of unpaid orders: the sweeper's command in every state.

/// Half an hour after the order (placed at `at(0)`).
const DEADLINE: i64 = 1_800;

fn expire(placed_before: i64, seconds: i64) -> OrderCommand {
    OrderCommand::Expire {
        placed_before: at(placed_before),
        at: at(seconds),
    }
}

fn expired_at(seconds: i64) -> OrderEvent {
    OrderEvent::OrderExpired(OrderExpired {
        expired_at: at(seconds),
        restocked: restocked_lines(),
    })
}

fn given_expired() -> Vec<OrderEvent> {
    let mut events = given_placed();
    events.push(expired_at(DEADLINE + 5));
    events
}

#[test]
fn it_expires_an_order_left_unpaid_past_the_deadline_and_restocks_every_line() {
    OrderTest::with(())
        .given(given_placed())
        .when(expire(DEADLINE, DEADLINE + 5))
        .then_expect_events(vec![expired_at(DEADLINE + 5)]);
}

#[test]
fn it_leaves_an_order_placed_at_or_after_the_deadline_alone() {
    OrderTest::with(())
        .given(given_placed())
        .when(expire(0, 5))
        .then_expect_events(vec![]);
}

#[test]
fn it_never_expires_a_paid_shipped_cancelled_or_expired_order() {
    for given in [
        given_paid(),
        given_shipped(),
        given_cancelled(),
        given_expired(),
    ] {
        OrderTest::with(())
            .given(given)
            .when(expire(DEADLINE * 10, DEADLINE * 10))
            .then_expect_events(vec![]);
    }
}

#[test]
fn it_has_no_order_to_expire_under_an_unused_or_abandoned_key() {
    OrderTest::with(())
        .given_no_previous_events()
        .when(expire(DEADLINE, DEADLINE))
        .then_expect_error(OrderError::OrderNotFound);
    OrderTest::with(())
        .given(given_abandoned_by(by_customer("cust-1")))
        .when(expire(DEADLINE, DEADLINE))
        .then_expect_error(OrderError::OrderNotFound);
}

#[test]
fn it_refuses_to_pay_ship_or_cancel_an_expired_order() {
    for (command, action) in [
        (pay(DEADLINE * 2), OrderAction::Pay),
        (ship(DEADLINE * 2), OrderAction::Ship),
        (cancel_by_staff(DEADLINE * 2), OrderAction::Cancel),
        (
            cancel_by_customer("cust-1", DEADLINE * 2),
            OrderAction::Cancel,
        ),
    ] {
        OrderTest::with(())
            .given(given_expired())
            .when(command)
            .then_expect_error(invalid(OrderStatus::Expired, action));
    }
}

#[test]
fn it_never_moves_the_clock_backwards_when_it_expires_an_order() {
    let mut events = given_placed();
    events.push(OrderEvent::OrderPaid {
        paid_at: at(DEADLINE * 3),
    });
    let mut order = Order::default();
    for event in given_placed() {
        cqrs_es::Aggregate::apply(&mut order, event);
    }
    // A sweeper whose clock is behind the order's last change.
    let decided = order.decide(expire(DEADLINE, -60)).unwrap();
    assert_eq!(decided, vec![expired_at(0)]);
    let mut paid = Order::default();
    for event in events {
        cqrs_es::Aggregate::apply(&mut paid, event);
    }
    assert_eq!(
        paid.decide(expire(DEADLINE * 4, DEADLINE * 4)).unwrap(),
        vec![]
    );
}

#[test]
fn it_shows_an_expired_order_as_expired_and_writes_its_event_at_version_1() {
    let mut order = Order::default();
    for event in given_expired() {
        cqrs_es::Aggregate::apply(&mut order, event);
    }
    let details = order.details().unwrap();
    assert_eq!(details.status, OrderStatus::Expired);
    assert_eq!(details.updated_at, at(DEADLINE + 5));
    assert_eq!(
        "expired".parse::<OrderStatus>().unwrap(),
        OrderStatus::Expired
    );
    let event = expired_at(DEADLINE + 5);
    assert_eq!(event.event_type(), "OrderExpired");
    assert_eq!(event.event_version(), "1");
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
}
