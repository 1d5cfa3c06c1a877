//! A product of a tenant's catalogue, one stream per (tenant, sku): its name
//! and unit price. Stock on hand is not here: it moves through orders and
//! stock adjustments, and the inventory row is its guard.

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::{Currency, Money, ProductName, Sku, TenantId};

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductCommand {
    /// Creates the product, or replaces its name and price.
    DefineProduct(DefineProduct),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefineProduct {
    pub tenant: TenantId,
    pub sku: Sku,
    pub name: ProductName,
    pub unit_price: Money,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    /// The first definition of the product.
    ProductDefined(ProductDefinition),
    /// A later definition: new name and/or price. Orders already placed keep
    /// the price they were sold at.
    ProductRedefined(ProductDefinition),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDefinition {
    pub tenant: TenantId,
    pub sku: Sku,
    pub name: ProductName,
    /// Minor units of `currency`.
    pub unit_price: i64,
    pub currency: Currency,
    pub defined_at: DateTime<Utc>,
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductDefined(_) => "ProductDefined",
            Self::ProductRedefined(_) => "ProductRedefined",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    #[error("a unit price may not be negative")]
    NegativePrice,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    definition: Option<ProductDefinition>,
}

impl Product {
    pub fn definition(&self) -> Option<&ProductDefinition> {
        self.definition.as_ref()
    }

    pub fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        let ProductCommand::DefineProduct(define) = command;
        if define.unit_price.amount < 0 {
            return Err(ProductError::NegativePrice);
        }
        let unchanged = self.definition.as_ref().is_some_and(|current| {
            current.name == define.name
                && current.unit_price == define.unit_price.amount
                && current.currency == define.unit_price.currency
        });
        if unchanged {
            return Ok(vec![]);
        }
        let defined_at = define.at.trunc_subsecs(6);
        let definition = ProductDefinition {
            tenant: define.tenant,
            sku: define.sku,
            name: define.name,
            unit_price: define.unit_price.amount,
            currency: define.unit_price.currency,
            defined_at: match &self.definition {
                Some(current) => defined_at.max(current.defined_at),
                None => defined_at,
            },
        };
        Ok(vec![if self.definition.is_some() {
            ProductEvent::ProductRedefined(definition)
        } else {
            ProductEvent::ProductDefined(definition)
        }])
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProductEvent::ProductDefined(definition)
            | ProductEvent::ProductRedefined(definition) => self.definition = Some(definition),
        }
    }
}
