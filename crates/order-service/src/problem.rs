//! Every error answer is an RFC 9457 problem document.
//!
//! Handlers fail with [`ApiError`], which carries a [`Problem`]. The
//! [`problem_responses`] middleware finishes every error response on its way
//! out: it stamps the request id into problems, and turns any error response
//! that is not yet a problem (axum's own 404/405, the body limit's 413, the
//! timeout's 503, a caught panic) into one. No plain-text or HTML error ever
//! leaves the service.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use order_api::{Problem, ProblemKind, PROBLEM_CONTENT_TYPE};

/// A failed request, as the caller will see it.
#[derive(Debug)]
pub struct ApiError {
    /// Boxed: errors travel through every handler's `Result`.
    pub problem: Box<Problem>,
    /// `Retry-After` seconds, for 503s.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        let retry_after =
            matches!(kind, ProblemKind::Unavailable | ProblemKind::Timeout).then_some(1);
        Self {
            problem: Box::new(kind.problem(detail)),
            retry_after,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.problem.extensions.field = Some(field.into());
        self
    }

    pub fn with_sku(mut self, sku: impl Into<String>) -> Self {
        self.problem.extensions.sku = Some(sku.into());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemKind::NotFound, format!("no such {what}"))
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unauthenticated, detail)
    }

    /// An error whose details must not reach the caller: logged here, inside
    /// the request's span (which carries the request id), and answered with
    /// a bare 500.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            ProblemKind::Internal,
            "the service failed to handle this request; quote the request id to support",
        )
    }

    pub fn unavailable(error: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%error, "database unavailable");
        Self::new(
            ProblemKind::Unavailable,
            "the service is overloaded or its database is unreachable; retry shortly with the same Idempotency-Key",
        )
    }
}

impl From<order_store::StoreError> for ApiError {
    fn from(err: order_store::StoreError) -> Self {
        if err.is_unavailable() {
            Self::unavailable(&err)
        } else {
            Self::internal(&err)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .problem
            .status
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"store-orders\""),
            );
        }
        // Serialized by `problem_responses`, once the request id is known.
        response
            .extensions_mut()
            .insert(PendingProblem(*self.problem));
        response
    }
}

#[derive(Debug, Clone)]
struct PendingProblem(Problem);

/// Middleware: finishes every error response as a problem document.
pub async fn problem_responses(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(order_api::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let status = response.status();
    let problem = match response.extensions_mut().remove::<PendingProblem>() {
        Some(PendingProblem(problem)) => problem,
        None if status.is_client_error() || status.is_server_error() => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()));
            if is_problem {
                return response;
            }
            let kind = kind_for_status(status);
            if kind == ProblemKind::Internal {
                tracing::error!(%status, "error response without a problem");
            }
            let mut problem = kind.problem(detail_for_status(status));
            problem.status = Some(status);
            if kind == ProblemKind::Unavailable || kind == ProblemKind::Timeout {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1_u32));
            }
            problem
        }
        None => return response,
    };
    let mut problem = problem;
    problem.extensions.request_id = request_id;
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn kind_for_status(status: StatusCode) -> ProblemKind {
    match status {
        StatusCode::NOT_FOUND => ProblemKind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemKind::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemKind::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemKind::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ProblemKind::Timeout,
        StatusCode::SERVICE_UNAVAILABLE => ProblemKind::Timeout,
        StatusCode::UNAUTHORIZED => ProblemKind::Unauthenticated,
        StatusCode::FORBIDDEN => ProblemKind::Forbidden,
        s if s.is_client_error() => ProblemKind::MalformedBody,
        _ => ProblemKind::Internal,
    }
}

fn detail_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "no such resource; see /openapi.json for the routes",
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method",
        StatusCode::PAYLOAD_TOO_LARGE => "request bodies may be at most 64 KiB",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "send the body as application/json",
        StatusCode::REQUEST_TIMEOUT
        | StatusCode::GATEWAY_TIMEOUT
        | StatusCode::SERVICE_UNAVAILABLE => {
            "the request took too long; retry with the same Idempotency-Key"
        }
        s if s.is_client_error() => "the request could not be understood",
        _ => "the service failed to handle this request; quote the request id to support",
    }
}

/// What a caught panic answers: a plain 500, made a problem on the way out.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}
