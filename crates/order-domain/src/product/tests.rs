use cqrs_es::test::TestFramework;

use super::*;
use crate::test_support::*;

fn define(product_name: &str, price: i64, seconds: i64) -> ProductCommand {
    ProductCommand::DefineProduct(DefineProduct {
        tenant: tenant("acme"),
        sku: sku("DOG-FOOD-3KG"),
        name: name(product_name),
        unit_price: pyg(price),
        at: at(seconds),
    })
}

fn definition(product_name: &str, price: i64, seconds: i64) -> ProductDefinition {
    ProductDefinition {
        tenant: tenant("acme"),
        sku: sku("DOG-FOOD-3KG"),
        name: name(product_name),
        unit_price: price,
        currency: currency("PYG"),
        defined_at: at(seconds),
    }
}

#[test]
fn it_defines_a_new_product() {
    TestFramework::<Product>::with(())
        .given_no_previous_events()
        .when(define("Dog food", 125_000, 0))
        .then_expect_events(vec![ProductEvent::ProductDefined(definition(
            "Dog food", 125_000, 0,
        ))]);
}

#[test]
fn it_treats_the_same_definition_again_as_done() {
    TestFramework::<Product>::with(())
        .given(vec![ProductEvent::ProductDefined(definition(
            "Dog food", 125_000, 0,
        ))])
        .when(define("Dog food", 125_000, 10))
        .then_expect_events(vec![]);
}

#[test]
fn it_reprices_and_renames_a_defined_product() {
    TestFramework::<Product>::with(())
        .given(vec![ProductEvent::ProductDefined(definition(
            "Dog food", 125_000, 0,
        ))])
        .when(define("Dog food, 3 kg", 130_000, 10))
        .then_expect_events(vec![ProductEvent::ProductRedefined(definition(
            "Dog food, 3 kg",
            130_000,
            10,
        ))]);
}

#[test]
fn it_refuses_a_negative_price() {
    TestFramework::<Product>::with(())
        .given_no_previous_events()
        .when(define("Dog food", -1, 0))
        .then_expect_error(ProductError::NegativePrice);
}

#[test]
fn it_accepts_a_free_product() {
    TestFramework::<Product>::with(())
        .given_no_previous_events()
        .when(define("Sticker", 0, 0))
        .then_expect_events(vec![ProductEvent::ProductDefined(definition(
            "Sticker", 0, 0,
        ))]);
}
