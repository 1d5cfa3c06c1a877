use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document (the `problem_details` crate's), with the
/// extension members this API adds.
pub type Problem = problem_details::ProblemDetails<ProblemExtensions>;

/// Extension members: each present only where it helps the caller act.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemExtensions {
    /// The request's `x-request-id`, to quote to support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The offending field of the request, e.g. `lines[2].quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// The order's status, on an invalid transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_status: Option<String>,
    /// The bound a checkout would exceed, on `/unpaid-limit`: `orders`
    /// (open unpaid orders) or `units` (units they hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The bound's value, on `/unpaid-limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most: Option<i64>,
    /// What the customer's unpaid orders hold now, on `/unpaid-limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
}

// The problem document as the OpenAPI document describes it (component
// `Problem`): what `Problem` serializes to. A test below keeps the two from
// drifting apart.
/// An RFC 9457 problem document (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// The kind of problem: a URI reference relative to the service,
    /// `/problems/<slug>`.
    #[serde(rename = "type")]
    #[schema(format = "uri-reference", example = "/problems/out-of-stock")]
    pub kind: String,
    /// A short, human-readable summary of the kind.
    pub title: String,
    /// The HTTP status of this answer.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time, phrased so the caller can act on it.
    pub detail: String,
    #[serde(flatten)]
    pub extensions: ProblemExtensions,
}

/// Every kind of problem the service answers with. Its `type` URI is
/// `/problems/<slug>`, relative to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    CheckoutAbandoned,
    CheckoutNotFound,
    UnknownSku,
    OutOfStock,
    UnpaidLimit,
    StockBelowZero,
    InvalidTransition,
    MalformedBody,
    InvalidBody,
    InvalidQuery,
    InvalidHeader,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooManyRequests,
    Unavailable,
    Timeout,
    Internal,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 24] = [
        Self::IdempotencyKeyMissing,
        Self::IdempotencyKeyInvalid,
        Self::IdempotencyKeyReused,
        Self::CheckoutAbandoned,
        Self::CheckoutNotFound,
        Self::UnknownSku,
        Self::OutOfStock,
        Self::UnpaidLimit,
        Self::StockBelowZero,
        Self::InvalidTransition,
        Self::MalformedBody,
        Self::InvalidBody,
        Self::InvalidQuery,
        Self::InvalidHeader,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::TooManyRequests,
        Self::Unavailable,
        Self::Timeout,
        Self::Internal,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::IdempotencyKeyMissing => "idempotency-key-missing",
            Self::IdempotencyKeyInvalid => "idempotency-key-invalid",
            Self::IdempotencyKeyReused => "idempotency-key-reused",
            Self::CheckoutAbandoned => "checkout-abandoned",
            Self::CheckoutNotFound => "checkout-not-found",
            Self::UnknownSku => "unknown-sku",
            Self::OutOfStock => "out-of-stock",
            Self::UnpaidLimit => "unpaid-limit",
            Self::StockBelowZero => "stock-below-zero",
            Self::InvalidTransition => "invalid-transition",
            Self::MalformedBody => "malformed-body",
            Self::InvalidBody => "invalid-body",
            Self::InvalidQuery => "invalid-query",
            Self::InvalidHeader => "invalid-header",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::TooManyRequests => "too-many-requests",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// The `type` member: `/problems/<slug>`.
    pub fn uri(self) -> Uri {
        // Slugs are fixed lowercase ASCII: always a valid path.
        Uri::try_from(format!("/problems/{}", self.slug())).unwrap_or_default()
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::IdempotencyKeyMissing
            | Self::IdempotencyKeyInvalid
            | Self::MalformedBody
            | Self::InvalidQuery
            | Self::InvalidHeader => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::CheckoutNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::OutOfStock
            | Self::UnpaidLimit
            | Self::StockBelowZero
            | Self::InvalidTransition
            | Self::CheckoutAbandoned => StatusCode::CONFLICT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyKeyReused | Self::UnknownSku | Self::InvalidBody => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::IdempotencyKeyMissing => "Idempotency-Key header missing",
            Self::IdempotencyKeyInvalid => "Idempotency-Key header invalid",
            Self::IdempotencyKeyReused => "Idempotency-Key reused for a different request",
            Self::CheckoutAbandoned => "Checkout abandoned",
            Self::CheckoutNotFound => "Nothing recorded for this Idempotency-Key",
            Self::UnknownSku => "Unknown SKU",
            Self::OutOfStock => "Out of stock",
            Self::UnpaidLimit => "Too much held by unpaid orders",
            Self::StockBelowZero => "Stock cannot go below zero",
            Self::InvalidTransition => "Invalid order transition",
            Self::MalformedBody => "Malformed request body",
            Self::InvalidBody => "Invalid request body",
            Self::InvalidQuery => "Invalid query parameter",
            Self::InvalidHeader => "Invalid request header",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::PayloadTooLarge => "Request body too large",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::TooManyRequests => "Too many requests",
            Self::Unavailable => "Service unavailable",
            Self::Timeout => "Request timed out",
            Self::Internal => "Internal error",
        }
    }

    /// A problem of this kind: type, title and status filled in.
    pub fn problem(self, detail: impl Into<String>) -> Problem {
        problem_details::ProblemDetails::new()
            .with_type(self.uri())
            .with_title(self.title())
            .with_status(self.status())
            .with_detail(detail)
            .with_extensions(ProblemExtensions::default())
    }

    /// The kind of a problem document, if its `type` is one of ours.
    pub fn of(problem: &Problem) -> Option<Self> {
        let uri = problem.r#type.as_ref()?.to_string();
        Self::ALL
            .into_iter()
            .find(|k| uri.ends_with(&format!("/{}", k.slug())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_kind_round_trips_through_its_type_uri() {
        for kind in ProblemKind::ALL {
            assert_eq!(ProblemKind::of(&kind.problem("x")), Some(kind));
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
        }
    }

    #[test]
    fn the_documented_problem_reads_every_problem_the_service_sends() {
        let mut problem = ProblemKind::OutOfStock.problem("only 1 left");
        problem.extensions = ProblemExtensions {
            request_id: Some("r".into()),
            field: Some("lines[0].quantity".into()),
            sku: Some("A".into()),
            requested: Some(2),
            available: Some(1),
            current_status: Some("paid".into()),
            limit: Some("orders".into()),
            most: Some(5),
            held: Some(5),
        };
        let sent = serde_json::to_value(&problem).unwrap_or_default();
        let documented: ProblemDocument = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(serde_json::to_value(&documented).unwrap_or_default(), sent);
        assert_eq!(documented.kind, "/problems/out-of-stock");
    }

    #[test]
    fn a_problem_serializes_type_status_and_only_present_extensions() {
        let mut problem = ProblemKind::OutOfStock.problem("only 1 left");
        problem.extensions.sku = Some("A".into());
        let json = serde_json::to_value(&problem).unwrap_or_default();
        assert_eq!(json["type"], "/problems/out-of-stock");
        assert_eq!(json["status"], 409);
        assert_eq!(json["title"], "Out of stock");
        assert_eq!(json["detail"], "only 1 left");
        assert_eq!(json["sku"], "A");
        assert!(json.get("field").is_none());
        let back: Problem = serde_json::from_value(json).unwrap_or_default();
        assert_eq!(back, problem);
    }
}
