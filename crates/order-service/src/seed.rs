//! The demo tenant: a handful of products with stock. Safe to run again:
//! identical definitions change nothing, and stock receipts are keyed, so a
//! second run replays them instead of adding stock.

use chrono::Utc;
use order_domain::{
    Currency, IdempotencyKey, InvalidValue, Money, ProductName, Sku, StockDelta, StockReason,
    TenantId,
};
use order_store::{Actor, CatalogueCommands, CatalogueError, CommandContext};
use sqlx::PgPool;

/// (sku, name, unit price in guaraníes, initial stock)
pub const DEMO_PRODUCTS: [(&str, &str, i64, i64); 5] = [
    ("DOG-FOOD-3KG", "Dog food, 3 kg", 125_000, 100),
    ("CAT-FOOD-1KG", "Cat food, 1 kg", 48_000, 80),
    ("BIRD-SEED-500G", "Bird seed, 500 g", 15_500, 40),
    ("LEASH-RED", "Leash, red", 60_000, 25),
    ("CHEW-TOY", "Chew toy", 22_000, 1),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Value(#[from] InvalidValue),
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
}

/// Defines the demo products in `tenant` and receives their initial stock.
pub async fn seed_demo(pool: &PgPool, tenant: &TenantId) -> Result<(), SeedError> {
    let catalogue = CatalogueCommands::new(pool.clone());
    let staff = CommandContext {
        tenant: tenant.clone(),
        actor: Actor::Staff("seed-demo".into()),
        request_id: None,
    };
    let pyg = Currency::try_from("PYG")?;
    for (sku, name, price, stock) in DEMO_PRODUCTS {
        let sku = Sku::try_from(sku)?;
        catalogue
            .define_product(
                &staff,
                sku.clone(),
                ProductName::try_from(name)?,
                Money::new(price, pyg),
                Utc::now(),
            )
            .await?;
        catalogue
            .adjust_stock(
                &staff,
                IdempotencyKey::try_from(format!("seed-demo-{sku}-v1"))?,
                sku,
                StockDelta::try_from(stock)?,
                StockReason::Received,
                Utc::now(),
            )
            .await?;
    }
    Ok(())
}
