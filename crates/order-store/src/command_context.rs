use std::collections::HashMap;

use order_domain::{CustomerId, TenantId};

use crate::event_repository::TENANT_METADATA_KEY;

/// Who is acting: recorded in every event's metadata for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Customer(CustomerId),
    /// A member of the tenant's staff, by the `sub` of their token.
    Staff(String),
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
    pub(crate) fn metadata(&self) -> HashMap<String, String> {
        let mut metadata = HashMap::with_capacity(3);
        metadata.insert(TENANT_METADATA_KEY.to_owned(), self.tenant.to_string());
        metadata.insert(
            "actor".to_owned(),
            match &self.actor {
                Actor::Customer(id) => format!("customer:{id}"),
                Actor::Staff(sub) => format!("staff:{sub}"),
            },
        );
        if let Some(id) = &self.request_id {
            metadata.insert("request_id".to_owned(), id.clone());
        }
        metadata
    }
}
