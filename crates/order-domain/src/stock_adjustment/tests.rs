use cqrs_es::test::TestFramework;

use super::*;
use crate::test_support::*;

fn adjust(
    key_text: &str,
    sku_code: &str,
    delta: i64,
    reason: StockReason,
) -> StockAdjustmentCommand {
    StockAdjustmentCommand::AdjustStock(AdjustStock {
        tenant: tenant("acme"),
        idempotency_key: key(key_text),
        sku: sku(sku_code),
        delta: StockDelta::try_from(delta).unwrap(),
        reason,
        at: at(0),
    })
}

fn adjusted(
    key_text: &str,
    sku_code: &str,
    delta: i64,
    reason: StockReason,
) -> StockAdjustmentEvent {
    StockAdjustmentEvent::StockAdjusted(StockAdjusted {
        tenant: tenant("acme"),
        idempotency_key: key(key_text),
        sku: sku(sku_code),
        delta,
        reason,
        adjusted_at: at(0),
    })
}

#[test]
fn it_books_a_stock_receipt() {
    TestFramework::<StockAdjustment>::with(())
        .given_no_previous_events()
        .when(adjust("r-1", "A", 50, StockReason::Received))
        .then_expect_events(vec![adjusted("r-1", "A", 50, StockReason::Received)]);
}

#[test]
fn it_replays_a_retried_receipt_without_booking_it_twice() {
    TestFramework::<StockAdjustment>::with(())
        .given(vec![adjusted("r-1", "A", 50, StockReason::Received)])
        .when(adjust("r-1", "A", 50, StockReason::Received))
        .then_expect_events(vec![]);
}

#[test]
fn it_rejects_a_reused_key_for_another_movement() {
    for other in [
        adjust("r-1", "A", 51, StockReason::Received),
        adjust("r-1", "B", 50, StockReason::Received),
        adjust("r-1", "A", 50, StockReason::Count),
    ] {
        TestFramework::<StockAdjustment>::with(())
            .given(vec![adjusted("r-1", "A", 50, StockReason::Received)])
            .when(other)
            .then_expect_error(StockAdjustmentError::IdempotencyKeyReused);
    }
}

#[test]
fn it_refuses_a_receipt_that_removes_stock() {
    TestFramework::<StockAdjustment>::with(())
        .given_no_previous_events()
        .when(adjust("r-1", "A", -5, StockReason::Received))
        .then_expect_error(StockAdjustmentError::ReceiptMustAdd);
}

#[test]
fn it_books_a_negative_adjustment_and_leaves_the_floor_to_the_inventory() {
    TestFramework::<StockAdjustment>::with(())
        .given_no_previous_events()
        .when(adjust("a-1", "A", -5, StockReason::Adjustment))
        .then_expect_events(vec![adjusted("a-1", "A", -5, StockReason::Adjustment)]);
}
