//! Liveness, readiness and metrics (no auth). The OpenAPI document is
//! served by `openapi.rs`, which describes these routes.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use order_api::{CommitOrderStatus, NodeCommitOrderStatus, ProjectorStatus, Readiness};
use order_store::{CommitOrderHoldBack, StoreHealth};

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Ready to serve: the database answers, the migrations are applied, the
/// projector runs (inline, so never behind). The body also says how far
/// commit-order readers (relay, rebuild) are held back by running
/// transactions.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the body says why", body = Readiness),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = check(&state).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(readiness)).into_response();
    // A plain JSON body even when not ready: this is a report, not an error.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

async fn check(state: &AppState) -> Readiness {
    let mut readiness = Readiness {
        ready: false,
        database: "unreachable".into(),
        migrations: "unknown".into(),
        projector: ProjectorStatus {
            mode: "inline".into(),
            running: false,
            lag_events: 0,
            lag_seconds: 0.0,
        },
        commit_order: CommitOrderStatus {
            held_back_events: 0,
            held_back_seconds: 0.0,
            nodes: Vec::new(),
        },
    };
    match state.store.health().await {
        StoreHealth::Unreachable(why) => {
            // Why stays in the log: the answer goes to anyone who asks.
            tracing::warn!(error = %why, "readiness: the database did not answer");
            readiness.database = "unreachable".into();
        }
        StoreHealth::NotMigrated => {
            readiness.database = "ok".into();
            readiness.migrations = "not applied: run `order-service migrate`".into();
        }
        StoreHealth::MigrationsMissing(missing) => {
            readiness.database = "ok".into();
            readiness.migrations =
                format!("{missing} migration(s) not applied: run `order-service migrate`");
        }
        StoreHealth::Ready(held) => {
            readiness.database = "ok".into();
            readiness.migrations = "applied".into();
            // The database answered with the schema in place: the inline
            // projector runs with every append.
            readiness.projector.running = true;
            readiness.commit_order.held_back_events = held.events;
            readiness.commit_order.held_back_seconds = held.seconds;
            readiness.commit_order.nodes = held
                .nodes
                .iter()
                .map(|n| NodeCommitOrderStatus {
                    node: n.node.clone(),
                    held_back_events: n.events,
                    held_back_seconds: n.seconds,
                })
                .collect();
            record_hold_back(&held);
            readiness.ready = true;
        }
    }
    readiness
}

fn record_hold_back(held: &CommitOrderHoldBack) {
    metrics::gauge!("orders_commit_order_held_back_events").set(held.events as f64);
    metrics::gauge!("orders_commit_order_held_back_seconds").set(held.seconds);
    for node in &held.nodes {
        metrics::gauge!("orders_commit_order_node_held_back_events", "node" => node.node.clone())
            .set(node.events as f64);
        metrics::gauge!("orders_commit_order_node_held_back_seconds", "node" => node.node.clone())
            .set(node.seconds);
    }
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the held-back gauges (from the probe `/readyz` shares, at
    // most one a second); a database error leaves their last values.
    if let StoreHealth::Ready(held) = state.store.health().await {
        record_hold_back(&held);
    }
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
