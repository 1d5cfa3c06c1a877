//! Logs and request ids.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Response};
use axum::middleware::Next;
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (once; later calls are no-ops). `RUST_LOG`
/// overrides the default levels.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Longest client-sent request id kept; a longer or odd one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The contract's request id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
/// Anything else is the client's only: it is replaced, never logged as the
/// request's id nor stored in an event's metadata (no quotes, slashes or
/// angle brackets reach an audit trail or a log line).
fn is_sane_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Middleware: every request gets an `x-request-id` (the client's when it
/// sent a sane one, else a fresh UUID), and every response echoes it.
pub async fn request_id(mut request: Request, next: Next) -> axum::response::Response {
    let sane = request
        .headers()
        .get(order_api::REQUEST_ID)
        .filter(|v| is_sane_request_id(v.as_bytes()))
        .cloned();
    let id = sane.unwrap_or_else(|| {
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    });
    request
        .headers_mut()
        .insert(order_api::REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(order_api::REQUEST_ID, id);
    response
}

/// The span of one request: id, method, route, tenant (filled in by
/// authentication), status and latency (filled in at the end).
pub fn request_span(request: &Request) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get(order_api::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        route,
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

pub fn record_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    span.record("status", response.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    if response.status().is_server_error() {
        tracing::warn!("request failed");
    } else {
        tracing::info!("request done");
    }
}

#[cfg(test)]
mod tests {
    use super::is_sane_request_id;

    #[test]
    fn it_keeps_request_ids_of_the_contract_alphabet_up_to_128_characters() {
        assert!(is_sane_request_id(b"trace-abc_1.2:3"));
        assert!(is_sane_request_id("A".repeat(128).as_bytes()));
        for odd in [
            &b""[..],
            "A".repeat(129).as_bytes(),
            b"a/b",
            b"a b",
            b"<script>",
            b"quote\"",
            b"semi;colon",
            "caf\u{e9}".as_bytes(),
        ] {
            assert!(!is_sane_request_id(odd), "{odd:?}");
        }
    }
}
