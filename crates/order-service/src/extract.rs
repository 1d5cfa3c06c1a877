//! Request extractors whose failures are problem documents naming the field,
//! in place of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use order_api::ProblemKind;
use order_domain::{IdempotencyKey, OrderChannel, OrderId, Sku};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// A JSON body. Syntax errors answer 400 `/malformed-body` (with line and
/// column); well-formed JSON of the wrong shape answers 422 `/invalid-body`
/// naming the field (`lines[2].quantity`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                ProblemKind::UnsupportedMediaType,
                "send the body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        ProblemKind::PayloadTooLarge,
                        "request bodies may be at most 64 KiB",
                    )
                } else {
                    ApiError::new(
                        ProblemKind::MalformedBody,
                        "the request body could not be read",
                    )
                }
            })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, reporting where it went wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::new(ProblemKind::MalformedBody, format!("invalid JSON: {e}")))?;
    Ok(value)
}

fn json_error(path: &str, error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(ProblemKind::MalformedBody, format!("invalid JSON: {error}"))
        }
        Category::Data => {
            // serde's message ends with " at line L column C"; the field
            // path says more to a client.
            let message = error.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            let problem = ApiError::new(ProblemKind::InvalidBody, format!("{path}: {message}"));
            if path == "." {
                problem
            } else {
                problem.with_field(path)
            }
        }
    }
}

/// The `Idempotency-Key` header, required: 1 to 255 visible ASCII characters
/// (0x21-0x7E), as the contract says. The IETF draft's form, an RFC 8941
/// sf-string (`"abc"`, quotes included), names the same key as `abc`; any
/// other visible-ASCII value is the key as it stands (so `"abc` is a key
/// of four characters, not an error).
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    // AUDIT-106: Idempotency key. Every checkout and stock movement goes
    // through here: exactly one header, parsed into the domain's
    // IdempotencyKey (which, with the tenant, is the stream's identity).
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(order_api::IDEMPOTENCY_KEY).iter();
        let Some(value) = values.next() else {
            return Err(ApiError::new(
                ProblemKind::IdempotencyKeyMissing,
                "send an Idempotency-Key header: a fresh UUIDv4 per checkout, reused on every retry of it",
            ));
        };
        if values.next().is_some() {
            return Err(ApiError::new(
                ProblemKind::IdempotencyKeyInvalid,
                "send exactly one Idempotency-Key header",
            ));
        }
        let invalid = |why: String| ApiError::new(ProblemKind::IdempotencyKeyInvalid, why);
        let text = std::str::from_utf8(value.as_bytes())
            .map_err(|_| invalid("the Idempotency-Key must be visible ASCII (0x21-0x7E)".into()))?;
        key_from_header(text)
            .map(Self)
            .map_err(|e| invalid(format!("the Idempotency-Key {}", e.reason)))
    }
}

/// `Order-Channel` (optional): where a checkout comes from, `api` (the
/// default) or `shop` (the checkout page). Recorded in `OrderPlaced`; not
/// part of the checkout's identity (a retry from another channel is the
/// same checkout).
#[derive(Debug, Clone, Copy)]
pub struct OrderChannelHeader(pub OrderChannel);

impl<S: Send + Sync> FromRequestParts<S> for OrderChannelHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(order_api::ORDER_CHANNEL).iter();
        let Some(value) = values.next() else {
            return Ok(Self(OrderChannel::default()));
        };
        let invalid = |why: &str| {
            ApiError::new(ProblemKind::InvalidHeader, format!("Order-Channel {why}"))
                .with_field(order_api::ORDER_CHANNEL)
        };
        if values.next().is_some() {
            return Err(invalid("may be given once"));
        }
        value
            .to_str()
            .ok()
            .and_then(|text| OrderChannel::from_request(text).ok())
            .map(Self)
            .ok_or_else(|| invalid("must be `api` or `shop`"))
    }
}

/// AUDIT-106: Idempotency key. The key a header value names: the content of
/// an RFC 8941 string item without parameters (parsed by `sfv`) when that is
/// a valid key, else the value itself.
fn key_from_header(text: &str) -> Result<IdempotencyKey, order_domain::InvalidValue> {
    if let Ok(item) = sfv::Parser::new(text).parse_item() {
        if let sfv::BareItem::String(inner) = &item.bare_item {
            if item.params.is_empty() {
                if let Ok(key) = IdempotencyKey::try_from(inner.as_str()) {
                    return Ok(key);
                }
            }
        }
    }
    IdempotencyKey::try_from(text)
}

/// An order id in the path. Something that is not a UUID cannot name an
/// order: 404, like any other order the caller cannot see.
#[derive(Debug, Clone, Copy)]
pub struct OrderIdPath(pub OrderId);

impl<S: Send + Sync> FromRequestParts<S> for OrderIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("order"))?;
        raw.parse()
            .map(OrderIdPath)
            .map_err(|_| ApiError::not_found("order"))
    }
}

/// A SKU in the path, parsed; the raw text when it is not a valid SKU (a
/// read answers 404 for it, a write 422).
#[derive(Debug, Clone)]
pub struct SkuPath(pub Result<Sku, String>);

impl<S: Send + Sync> FromRequestParts<S> for SkuPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("product"))?;
        Ok(Self(Sku::try_from(raw.as_str()).map_err(|e| e.reason)))
    }
}

impl SkuPath {
    pub fn for_read(self) -> Result<Sku, ApiError> {
        self.0.map_err(|_| ApiError::not_found("product"))
    }

    pub fn for_write(self) -> Result<Sku, ApiError> {
        self.0.map_err(|reason| {
            ApiError::new(ProblemKind::InvalidBody, format!("sku: {reason}")).with_field("sku")
        })
    }
}

/// The query string as name/value pairs, for handlers that parse it
/// themselves (and say which parameter is wrong).
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_pairs(query).map(QueryPairs)
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().map_err(|_| {
            ApiError::new(ProblemKind::InvalidQuery, "the query string is malformed")
        })?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::new(ProblemKind::InvalidQuery, "the query string is malformed"))
}

impl QueryPairs {
    /// The single value of `name`; a repeated parameter is refused.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut found = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = found.next();
        if found.next().is_some() {
            return Err(ApiError::new(
                ProblemKind::InvalidQuery,
                format!("{name} may be given once"),
            )
            .with_field(name));
        }
        Ok(first)
    }

    /// Refuses parameters other than `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(ApiError::new(
                ProblemKind::InvalidQuery,
                format!(
                    "unknown query parameter; this route takes {}",
                    allowed.join(", ")
                ),
            )
            .with_field(k.chars().take(64).collect::<String>())),
            None => Ok(()),
        }
    }

    /// `limit`: 1 to 100, default 20.
    pub fn limit(&self) -> Result<u16, ApiError> {
        match self.get("limit")? {
            None => Ok(20),
            Some(raw) => raw
                .parse::<u16>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        ProblemKind::InvalidQuery,
                        "limit must be a whole number from 1 to 100",
                    )
                    .with_field("limit")
                }),
        }
    }
}

/// The request id that the request-id middleware put on the request.
#[derive(Debug, Clone)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(order_api::REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_rfc_8941_strings_and_takes_anything_else_as_it_stands() {
        let key = |text: &str| key_from_header(text).map(|k| k.as_str().to_owned());
        assert_eq!(key("abc").as_deref(), Ok("abc"));
        assert_eq!(key("\"abc\"").as_deref(), Ok("abc"));
        assert_eq!(key(r#""a\"b\\c""#).as_deref(), Ok(r#"a"b\c"#));
        // Not a string item, or not a valid key inside: the value itself.
        for raw in ["\"", "\"abc", r#""a\x""#, "\"\"", "\"abc\";p=1", "abc\""] {
            assert_eq!(key(raw).as_deref(), Ok(raw), "{raw:?}");
        }
        for bad in ["", "a b", "\"a b\"", "\u{e9}"] {
            assert!(key(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        lines: Vec<Line>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Line {
        quantity: i64,
    }

    #[test]
    fn it_names_the_field_of_a_wrong_type_and_the_place_of_a_syntax_error() {
        let err =
            parse_json::<Sample>(br#"{"lines":[{"quantity":1},{"quantity":"2"}]}"#).unwrap_err();
        assert_eq!(
            err.problem.extensions.field.as_deref(),
            Some("lines[1].quantity")
        );
        assert_eq!(
            err.problem.status,
            Some(axum::http::StatusCode::UNPROCESSABLE_ENTITY)
        );
        let err = parse_json::<Sample>(br#"{"lines":[{"quantity":1}"#).unwrap_err();
        assert_eq!(
            err.problem.status,
            Some(axum::http::StatusCode::BAD_REQUEST)
        );
        let err =
            parse_json::<Sample>(br#"{"lines":[{"quantity":99999999999999999999}]}"#).unwrap_err();
        assert_eq!(
            err.problem.extensions.field.as_deref(),
            Some("lines[0].quantity")
        );
    }
}
