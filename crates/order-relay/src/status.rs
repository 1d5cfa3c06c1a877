//! What the relay reports: `/readyz` (200 only while it is the active relay
//! and publishing), `/healthz`, and Prometheus metrics (`/metrics`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

/// The relay's state, as `/readyz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    /// `starting`, `standby` (another relay holds the lock), `active`, or
    /// `failing` (cannot read or publish; retrying).
    pub role: String,
    /// Why it is not ready, when it is not.
    pub problem: Option<String>,
    /// Committed events not yet acknowledged by JetStream.
    pub lag_events: i64,
    /// Age of the oldest of them.
    pub lag_seconds: f64,
    /// Events stored in JetStream by this process.
    pub published: u64,
    /// Seconds since the relay last completed a round (published a batch,
    /// or found nothing to publish): grows while it is stuck.
    pub stalled_seconds: f64,
    /// What kind of failure it met last (`database`, `broker`, `other`),
    /// while it is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// On a Citus cluster: each node's commit order the relay follows
    /// (docs/SCALE-OUT.md); empty on a single PostgreSQL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeLag>,
}

/// One node's share of the lag, on a cluster.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeLag {
    /// `host:port`, or `coordinator`; `None` on a single PostgreSQL.
    pub node: Option<String>,
    /// The checkpoint that follows it.
    pub checkpoint: String,
    pub lag_events: i64,
    pub lag_seconds: f64,
    /// Why its events cannot be read now.
    pub problem: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Status {
    inner: Arc<Mutex<Reported>>,
}

/// What was last reported, and when the lag was measured and the relay
/// last made progress: while it is stuck, the lag it reports keeps
/// growing (the oldest unpublished event only gets older) instead of
/// freezing at its last measure.
#[derive(Debug)]
struct Reported {
    readiness: Readiness,
    lag_measured: Instant,
    progressed: Instant,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Reported {
                readiness: Readiness {
                    ready: false,
                    role: "starting".into(),
                    problem: Some("not connected yet".into()),
                    lag_events: 0,
                    lag_seconds: 0.0,
                    published: 0,
                    stalled_seconds: 0.0,
                    last_error: None,
                    nodes: Vec::new(),
                },
                lag_measured: Instant::now(),
                progressed: Instant::now(),
            })),
        }
    }
}

impl Status {
    fn update(&self, change: impl FnOnce(&mut Readiness)) {
        let mut reported = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut reported.readiness);
    }

    /// The readiness now: the lag as measured, aged by the time since
    /// (when events were waiting), and the time since the last progress.
    pub fn snapshot(&self) -> Readiness {
        let reported = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut readiness = reported.readiness.clone();
        if readiness.lag_events > 0 {
            readiness.lag_seconds += reported.lag_measured.elapsed().as_secs_f64();
        }
        readiness.stalled_seconds = reported.progressed.elapsed().as_secs_f64();
        readiness
    }

    /// A round completed: a batch published, or nothing to publish.
    pub fn progressed(&self) {
        let mut reported = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        reported.progressed = Instant::now();
    }

    pub fn standby(&self) {
        metrics::gauge!("orders_relay_active").set(0.0);
        self.update(|r| {
            r.ready = false;
            r.role = "standby".into();
            r.problem = Some("another relay holds the lock; taking over when it stops".into());
        });
    }

    pub fn active(&self) {
        metrics::gauge!("orders_relay_active").set(1.0);
        self.update(|r| {
            r.ready = true;
            r.role = "active".into();
            r.problem = None;
            r.last_error = None;
        });
    }

    /// Cannot read or publish now (`kind`: `database`, `broker`, `other`):
    /// not publishing, so not active, and counted.
    pub fn failing(&self, kind: &'static str, why: String) {
        metrics::gauge!("orders_relay_active").set(0.0);
        metrics::counter!("orders_relay_failures_total", "kind" => kind).increment(1);
        self.update(|r| {
            r.ready = false;
            r.role = "failing".into();
            r.problem = Some(why);
            r.last_error = Some(kind.to_owned());
        });
    }

    pub fn published(&self, stored: u64, duplicates: u64) {
        metrics::counter!("orders_relay_events_published_total").increment(stored);
        metrics::counter!("orders_relay_duplicates_total").increment(duplicates);
        self.update(|r| r.published += stored);
    }

    /// The lag of every commit order followed: the totals, and on a
    /// cluster each node's (a node whose events cannot be read makes the
    /// relay not ready, with why).
    pub fn lag(&self, feeds: Vec<NodeLag>) {
        let events: i64 = feeds.iter().map(|f| f.lag_events).sum();
        let seconds = feeds.iter().map(|f| f.lag_seconds).fold(0.0, f64::max);
        metrics::gauge!("orders_relay_lag_events").set(events as f64);
        metrics::gauge!("orders_relay_lag_seconds").set(seconds);
        for feed in &feeds {
            if let Some(node) = &feed.node {
                metrics::gauge!("orders_relay_node_lag_events", "node" => node.clone())
                    .set(feed.lag_events as f64);
                metrics::gauge!("orders_relay_node_lag_seconds", "node" => node.clone())
                    .set(feed.lag_seconds);
            }
        }
        let unreadable: Vec<String> = feeds
            .iter()
            .filter_map(|f| {
                f.problem
                    .as_ref()
                    .map(|why| format!("node {}: {why}", f.node.as_deref().unwrap_or("?")))
            })
            .collect();
        let mut reported = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        reported.lag_measured = Instant::now();
        let r = &mut reported.readiness;
        {
            r.lag_events = events;
            r.lag_seconds = seconds;
            r.nodes = if feeds.iter().any(|f| f.node.is_some()) {
                feeds
            } else {
                Vec::new()
            };
            if r.role == "active" {
                r.ready = unreadable.is_empty();
                r.problem = (!unreadable.is_empty()).then(|| unreadable.join("; "));
            }
        }
    }
}

/// The process's Prometheus recorder.
pub fn prometheus() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    metrics::describe_counter!(
        "orders_relay_events_published_total",
        "Events stored in JetStream by this relay"
    );
    metrics::describe_counter!(
        "orders_relay_duplicates_total",
        "Events published again after a retry or a restart, dropped by JetStream's de-duplication"
    );
    metrics::describe_gauge!(
        "orders_relay_lag_events",
        "Committed events not yet acknowledged by JetStream"
    );
    metrics::describe_gauge!(
        "orders_relay_lag_seconds",
        "Age of the oldest committed event not yet acknowledged by JetStream"
    );
    metrics::describe_gauge!(
        "orders_relay_node_lag_events",
        "On a Citus cluster: committed events born on this node not yet acknowledged by JetStream"
    );
    metrics::describe_gauge!(
        "orders_relay_node_lag_seconds",
        "On a Citus cluster: age of the oldest of them"
    );
    metrics::describe_gauge!(
        "orders_relay_active",
        "1 while this process is the relay that publishes, 0 on standby or while failing"
    );
    metrics::describe_gauge!(
        "orders_relay_stalled_seconds",
        "Seconds since the relay last completed a round (published, or found nothing to publish)"
    );
    metrics::describe_counter!(
        "orders_relay_parked_total",
        "Events whose message exceeded the broker's max_payload, published as placeholders (relay_parked_events)"
    );
    metrics::describe_counter!(
        "orders_relay_failures_total",
        "Interruptions by kind: database, broker, other"
    );
    Ok(handle)
}

#[derive(Clone)]
struct Reporting {
    status: Status,
    metrics: PrometheusHandle,
}

pub fn router(status: Status, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(Reporting { status, metrics })
}

async fn readyz(State(reporting): State<Reporting>) -> Response {
    let readiness = reporting.status.snapshot();
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, [(header::CACHE_CONTROL, "no-store")], Json(readiness)).into_response()
}

async fn render_metrics(State(reporting): State<Reporting>) -> Response {
    // The lag and the stall as of now, not as of the last measure: they
    // keep growing while the relay is stuck.
    let now = reporting.status.snapshot();
    metrics::gauge!("orders_relay_lag_seconds").set(now.lag_seconds);
    metrics::gauge!("orders_relay_stalled_seconds").set(now.stalled_seconds);
    reporting.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        reporting.metrics.render(),
    )
        .into_response()
}

/// How long to wait before the next attempt after `failures` in a row:
/// 100 ms doubling to 5 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << failures.min(6)).min(5_000))
}
