use order_domain::{CustomerId, TenantId};
use serde_json::value::RawValue;

use crate::error::StoreError;

/// The metadata key every event carries its tenant under.
pub const TENANT_METADATA_KEY: &str = "tenant_id";

/// Who is acting: recorded in every event's metadata for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Customer(CustomerId),
    /// A member of the tenant's staff, by the `sub` of their token.
    Staff(String),
    /// The service itself, by the job's name (e.g. `unpaid-expiry`).
    System(&'static str),
}

/// The tenant a command runs in and who sent it. The tenant comes from the
/// caller's token, never from a path or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    pub tenant: TenantId,
    pub actor: Actor,
    /// The HTTP request id, to find a command's events from a log line.
    pub request_id: Option<String>,
}

impl CommandContext {
    /// The JSON object stored beside each event of the command: tenant,
    /// actor, request id.
    pub(crate) fn metadata(&self) -> Result<Box<RawValue>, StoreError> {
        let actor = match &self.actor {
            Actor::Customer(id) => format!("customer:{id}"),
            Actor::Staff(sub) => format!("staff:{sub}"),
            Actor::System(job) => format!("system:{job}"),
        };
        let mut metadata = serde_json::Map::with_capacity(3);
        metadata.insert(
            TENANT_METADATA_KEY.to_owned(),
            self.tenant.to_string().into(),
        );
        metadata.insert("actor".to_owned(), actor.into());
        if let Some(id) = &self.request_id {
            metadata.insert("request_id".to_owned(), id.clone().into());
        }
        serde_json::value::to_raw_value(&metadata)
            .map_err(|e| StoreError::Internal(format!("cannot serialize metadata: {e}")))
    }
}
