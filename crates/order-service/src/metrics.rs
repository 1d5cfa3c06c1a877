//! Prometheus metrics: requests by route and status, commands by outcome.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds buckets for request latency: 1 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Appends per group-commit batch: 1 (a lone append) to the largest batch.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The process's Prometheus recorder (installed on first use; one per
/// process, shared by every app instance in it).
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("orders_append_batch_size".to_owned()),
                        BATCH_SIZE_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by route, method and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route, method and status"
    );
    metrics::describe_counter!(
        "orders_commands_total",
        "Commands by command and outcome (created, replayed, changed, unchanged, rejected, failed; conflict_retried counts re-runs after a concurrent append)"
    );
    metrics::describe_counter!(
        "orders_events_applied_total",
        "Events appended and projected"
    );
    metrics::describe_gauge!(
        "orders_projector_lag_events",
        "Events appended but not yet in the read model: 0, the projector runs in the append's transaction"
    );
    metrics::describe_gauge!(
        "orders_projector_lag_seconds",
        "How long the oldest event not yet in the read model has waited: 0, projected inline"
    );
    metrics::describe_gauge!(
        "orders_commit_order_held_back_events",
        "Committed events a commit-order reader (relay, rebuild) cannot read yet: held back by a running transaction"
    );
    metrics::describe_gauge!(
        "orders_commit_order_held_back_seconds",
        "Age of the oldest running transaction holding back commit-order readers"
    );
    metrics::describe_gauge!(
        "orders_commit_order_node_held_back_events",
        "On a Citus cluster: committed events born on this node that its commit-order readers cannot read yet"
    );
    metrics::describe_gauge!(
        "orders_commit_order_node_held_back_seconds",
        "On a Citus cluster: how long the oldest of them has waited"
    );
    metrics::describe_histogram!(
        "orders_append_batch_size",
        "Appends stored per group-commit batch (1: a lone append, stored at once)"
    );
    metrics::describe_histogram!(
        "orders_append_queue_wait_seconds",
        metrics::Unit::Seconds,
        "How long an append waited for a writer before its batch was stored"
    );
    metrics::describe_counter!(
        "orders_append_overloaded_total",
        "Appends answered 503 unstored: they waited longer than the pool's acquire timeout for a writer"
    );
    metrics::describe_counter!(
        "orders_append_batches_split_total",
        "Batches that failed as a whole and were stored one append at a time"
    );
    // Projected inline: the read model is never behind the events.
    metrics::gauge!("orders_projector_lag_events").set(0.0);
    metrics::gauge!("orders_projector_lag_seconds").set(0.0);
}

/// Records one command's outcome.
pub fn command(command: &'static str, outcome: &'static str) {
    metrics::counter!("orders_commands_total", "command" => command, "outcome" => outcome)
        .increment(1);
}

/// The method as a label from a fixed set: a client may send any token as
/// a method (`FOO1 /healthz`), and a label per invented method would be a
/// new series kept forever. The route is bounded the same way: a matched
/// route template or `unmatched`; the status is a number below 1000.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Middleware: counts and times every request by its route template.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
