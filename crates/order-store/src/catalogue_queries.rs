//! Reads of the catalogue (the `inventory` table).

use std::collections::HashMap;

use order_api::Product;
use order_domain::{Currency, Money, ProductName, Sku, TenantId};
use sqlx::PgPool;

use crate::error::StoreError;

/// A product's current name and price, for pricing a checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CataloguePrice {
    pub name: ProductName,
    pub unit_price: Money,
}

/// One page of products, in SKU order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductPage {
    pub products: Vec<Product>,
    /// The SKU to continue after, when there may be more.
    pub next: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CatalogueQueries {
    pool: PgPool,
}

impl CatalogueQueries {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn find_product(
        &self,
        tenant: &TenantId,
        sku: &Sku,
    ) -> Result<Option<Product>, StoreError> {
        Ok(sqlx::query_file_as!(
            Product,
            "src/sql/find_product.sql",
            tenant.as_str(),
            sku.as_str()
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Products after the SKU `after`, at most `limit` (1 to 100).
    pub async fn list_products(
        &self,
        tenant: &TenantId,
        limit: u16,
        after: Option<&str>,
    ) -> Result<ProductPage, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut products = sqlx::query_file_as!(
            Product,
            "src/sql/list_products.sql",
            tenant.as_str(),
            after.unwrap_or(""),
            i64::from(limit) + 1
        )
        .fetch_all(&self.pool)
        .await?;
        let next = if products.len() > usize::from(limit) {
            products.truncate(usize::from(limit));
            products.last().map(|p| p.sku.clone())
        } else {
            None
        };
        Ok(ProductPage { products, next })
    }

    /// The current names and prices of `skus`; unknown SKUs are absent.
    pub async fn prices(
        &self,
        tenant: &TenantId,
        skus: &[&Sku],
    ) -> Result<HashMap<Sku, CataloguePrice>, StoreError> {
        let names: Vec<String> = skus.iter().map(|s| s.to_string()).collect();
        let rows = sqlx::query_file!("src/sql/catalogue_prices.sql", tenant.as_str(), &names[..])
            .fetch_all(&self.pool)
            .await?;
        let mut prices = HashMap::with_capacity(rows.len());
        for row in rows {
            let (sku, name, unit_price, currency) =
                (row.sku, row.name, row.unit_price, row.currency);
            let unreadable = |e: order_domain::InvalidValue| {
                StoreError::Internal(format!("inventory row {sku}: {e}"))
            };
            let price = CataloguePrice {
                name: ProductName::try_from(name.as_str()).map_err(unreadable)?,
                unit_price: Money::new(
                    unit_price,
                    Currency::try_from(currency.as_str()).map_err(unreadable)?,
                ),
            };
            prices.insert(Sku::try_from(sku.as_str()).map_err(unreadable)?, price);
        }
        Ok(prices)
    }
}
