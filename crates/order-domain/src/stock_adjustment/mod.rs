//! A keyed stock movement: one stream per (tenant, Idempotency-Key) holding a
//! single `StockAdjusted`, so that a retried stock receipt is a replay, not a
//! second receipt. Whether stock may go below zero is the inventory row's
//! call, in the store, in the same transaction.

use chrono::{DateTime, SubsecRound, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::{IdempotencyKey, Sku, StockDelta, StockReason, TenantId};

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StockAdjustmentCommand {
    AdjustStock(AdjustStock),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdjustStock {
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub sku: Sku,
    pub delta: StockDelta,
    pub reason: StockReason,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StockAdjustmentEvent {
    StockAdjusted(StockAdjusted),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjusted {
    pub tenant: TenantId,
    pub idempotency_key: IdempotencyKey,
    pub sku: Sku,
    pub delta: i64,
    pub reason: StockReason,
    pub adjusted_at: DateTime<Utc>,
}

impl DomainEvent for StockAdjustmentEvent {
    fn event_type(&self) -> String {
        "StockAdjusted".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockAdjustmentError {
    #[error(
        "this Idempotency-Key was already used for a different stock movement; send a new key for a new movement"
    )]
    IdempotencyKeyReused,
    #[error("a receipt adds stock: its delta must be positive; use reason \"adjustment\" or \"count\" to remove stock")]
    ReceiptMustAdd,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StockAdjustment {
    adjusted: Option<StockAdjusted>,
}

impl StockAdjustment {
    pub fn adjusted(&self) -> Option<&StockAdjusted> {
        self.adjusted.as_ref()
    }

    pub fn decide(
        &self,
        command: StockAdjustmentCommand,
    ) -> Result<Vec<StockAdjustmentEvent>, StockAdjustmentError> {
        let StockAdjustmentCommand::AdjustStock(adjust) = command;
        if let Some(done) = &self.adjusted {
            let same = done.tenant == adjust.tenant
                && done.idempotency_key == adjust.idempotency_key
                && done.sku == adjust.sku
                && done.delta == adjust.delta.get()
                && done.reason == adjust.reason;
            return if same {
                Ok(vec![])
            } else {
                Err(StockAdjustmentError::IdempotencyKeyReused)
            };
        }
        if adjust.reason == StockReason::Received && adjust.delta.get() < 0 {
            return Err(StockAdjustmentError::ReceiptMustAdd);
        }
        Ok(vec![StockAdjustmentEvent::StockAdjusted(StockAdjusted {
            tenant: adjust.tenant,
            idempotency_key: adjust.idempotency_key,
            sku: adjust.sku,
            delta: adjust.delta.get(),
            reason: adjust.reason,
            adjusted_at: adjust.at.trunc_subsecs(6),
        })])
    }
}

impl Aggregate for StockAdjustment {
    const TYPE: &'static str = "StockAdjustment";
    type Command = StockAdjustmentCommand;
    type Event = StockAdjustmentEvent;
    type Error = StockAdjustmentError;
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
        let StockAdjustmentEvent::StockAdjusted(adjusted) = event;
        self.adjusted = Some(adjusted);
    }
}
