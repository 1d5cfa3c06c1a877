//! Bearer tokens: HS256 JWTs signed with the service's secret. The tenant
//! and role of every request come from the token's claims, and from nowhere
//! else.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use order_domain::{CustomerId, TenantId};
use order_store::{Actor, CommandContext, OrderVisibility};
use serde::{Deserialize, Serialize};

use crate::cursor::CursorSeal;
use crate::problem::ApiError;

/// Longest Authorization header looked at; a bigger one is refused unread.
const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Staff,
}

/// The claims this service reads and mints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The customer id (or the staff member's id).
    pub sub: String,
    /// The tenant slug.
    pub tenant: String,
    pub role: Role,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Who issued the token: required and checked when the service is
    /// configured with an issuer (`ORDERS_JWT_ISSUER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Whom the token is for: required and checked when the service is
    /// configured with an audience (`ORDERS_JWT_AUDIENCE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The HS256 keys. Only HS256 is accepted: a token whose header names another
/// algorithm (`none`, or RS256 to pass the secret off as a public key) is
/// refused before its signature is even looked at.
///
/// Cheap to clone (every request's extractors take a copy from the state):
/// the keys and the validation rules are shared.
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<KeySet>,
}

#[derive(Clone)]
struct KeySet {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    cursors: CursorSeal,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least 32 bytes")]
pub struct WeakSecret;

impl JwtKeys {
    pub const MIN_SECRET_LEN: usize = 32;

    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 5;
        Ok(Self {
            inner: Arc::new(KeySet {
                encoding: EncodingKey::from_secret(secret),
                decoding: DecodingKey::from_secret(secret),
                validation,
                cursors: CursorSeal::new(secret),
                issuer: None,
                audience: None,
            }),
        })
    }

    /// These keys, requiring (and minting) `iss` and `aud`: where another
    /// system also issues HS256 tokens with the same secret, or the secret
    /// serves several services, a token meant for another one is refused.
    pub fn with_issuer_and_audience(
        mut self,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        let keys = Arc::make_mut(&mut self.inner);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &issuer {
            keys.validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if let Some(audience) = &audience {
            keys.validation.set_audience(&[audience]);
            required.push("aud");
        }
        keys.validation.set_required_spec_claims(&required);
        keys.issuer = issuer;
        keys.audience = audience;
        self
    }

    /// The seal of page cursors, keyed by the same secret.
    pub fn cursors(&self) -> &CursorSeal {
        &self.inner.cursors
    }

    /// Mints a token (for the `token` subcommand, the demo and tests).
    pub fn mint(
        &self,
        tenant: &TenantId,
        subject: &str,
        role: Role,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let claims = Claims {
            sub: subject.to_owned(),
            tenant: tenant.to_string(),
            role,
            exp: (now + ttl).timestamp(),
            iat: Some(now.timestamp()),
            nbf: None,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
    }

    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &self.inner.validation)
            .map(|d| d.claims)
    }
}

/// Who is calling: verified from the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub subject: String,
    pub role: Role,
}

impl Caller {
    /// Staff-only routes: a customer gets 403.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Staff => Ok(()),
            Role::Customer => Err(ApiError::new(
                order_api::ProblemKind::Forbidden,
                "this route is for staff; your token's role is customer",
            )),
        }
    }

    pub fn customer_id(&self) -> Result<CustomerId, ApiError> {
        CustomerId::try_from(self.subject.as_str())
            .map_err(|e| ApiError::unauthenticated(format!("the token's sub is not usable: {e}")))
    }

    /// Whose orders this caller may see.
    pub fn visibility(&self) -> Result<OrderVisibility, ApiError> {
        Ok(match self.role {
            Role::Staff => OrderVisibility::Tenant,
            Role::Customer => OrderVisibility::Customer(self.customer_id()?),
        })
    }

    pub fn command_context(&self, request_id: Option<String>) -> Result<CommandContext, ApiError> {
        Ok(CommandContext {
            tenant: self.tenant.clone(),
            actor: match self.role {
                Role::Staff => Actor::Staff(self.subject.clone()),
                Role::Customer => Actor::Customer(self.customer_id()?),
            },
            request_id,
        })
    }
}

/// Any router whose state holds the [`JwtKeys`] authenticates its callers
/// the same way (the service's, and the CRUD baseline of `order-bench`).
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    JwtKeys: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = JwtKeys::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthenticated("send Authorization: Bearer <token>"))?;
        if header.len() > MAX_AUTHORIZATION_LEN {
            return Err(ApiError::unauthenticated(
                "the Authorization header is too large",
            ));
        }
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthenticated("the Authorization header is not ASCII"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated("use the Bearer scheme: Authorization: Bearer <token>")
            })?;
        let claims = keys.verify(token).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::InvalidAlgorithm => "only HS256 tokens are accepted",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
                ErrorKind::Json(_) => "the token's claims are malformed (sub, tenant, role, exp)",
                _ => "the token is malformed",
            };
            ApiError::unauthenticated(why)
        })?;
        let tenant = TenantId::try_from(claims.tenant.as_str()).map_err(|_| {
            ApiError::unauthenticated("the token's tenant is not a valid tenant slug")
        })?;
        // Every role's `sub` ends up in event metadata (the actor): it is
        // held to the customer id's rules (1 to 255 bytes, no control
        // characters, which PostgreSQL text cannot always hold).
        if let Err(e) = CustomerId::try_from(claims.sub.as_str()) {
            return Err(ApiError::unauthenticated(format!(
                "the token's sub is not usable: {}",
                e.reason
            )));
        }
        tracing::Span::current().record("tenant", tenant.as_str());
        Ok(Self {
            tenant,
            subject: claims.sub,
            role: claims.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"unit-secret-unit-secret-unit-secret-0123";

    fn tenant() -> TenantId {
        TenantId::try_from("acme").unwrap()
    }

    #[test]
    fn it_refuses_tokens_of_another_issuer_or_audience_when_configured() {
        let checked = || {
            JwtKeys::new(SECRET).unwrap().with_issuer_and_audience(
                Some("https://id.shop".into()),
                Some("store-orders".into()),
            )
        };
        let plain = JwtKeys::new(SECRET).unwrap();
        let hour = Duration::hours(1);
        let without = plain.mint(&tenant(), "c", Role::Customer, hour).unwrap();
        assert!(checked().verify(&without).is_err(), "no iss, no aud");
        let other_audience = JwtKeys::new(SECRET)
            .unwrap()
            .with_issuer_and_audience(Some("https://id.shop".into()), Some("billing".into()))
            .mint(&tenant(), "c", Role::Customer, hour)
            .unwrap();
        assert!(
            checked().verify(&other_audience).is_err(),
            "another audience"
        );
        let other_issuer = JwtKeys::new(SECRET)
            .unwrap()
            .with_issuer_and_audience(Some("https://evil".into()), Some("store-orders".into()))
            .mint(&tenant(), "c", Role::Customer, hour)
            .unwrap();
        assert!(checked().verify(&other_issuer).is_err(), "another issuer");
        let right = checked()
            .mint(&tenant(), "c", Role::Customer, hour)
            .unwrap();
        let claims = checked().verify(&right).unwrap();
        assert_eq!(claims.iss.as_deref(), Some("https://id.shop"));
        assert_eq!(claims.aud.as_deref(), Some("store-orders"));
        // Unconfigured, tokens without them are read as before.
        assert!(plain.verify(&without).is_ok());
    }
}
