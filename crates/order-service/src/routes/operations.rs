//! Liveness, readiness and metrics (no auth). The OpenAPI document is
//! served by `openapi.rs`, which describes these routes.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use order_api::{CommitOrderStatus, ProjectorStatus, Readiness};

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
        },
    };
    let applied: Result<Vec<i64>, sqlx::Error> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&state.pool)
            .await;
    let applied = match applied {
        Ok(versions) => versions,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => {
            readiness.database = "ok".into();
            readiness.migrations = "not applied: run `order-service migrate`".into();
            return readiness;
        }
        Err(e) => {
            readiness.database = format!("unreachable: {e}");
            return readiness;
        }
    };
    readiness.database = "ok".into();
    let missing = order_store::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| !applied.contains(&m.version))
        .count();
    if missing > 0 {
        readiness.migrations =
            format!("{missing} migration(s) not applied: run `order-service migrate`");
        return readiness;
    }
    readiness.migrations = "applied".into();
    match commit_order_held_back(&state.pool).await {
        Ok((events, seconds)) => {
            // The database answered with the schema in place: the inline
            // projector runs with every append.
            readiness.projector.running = true;
            readiness.commit_order.held_back_events = events;
            readiness.commit_order.held_back_seconds = seconds;
            readiness.ready = true;
        }
        Err(e) => readiness.database = format!("error: {e}"),
    }
    readiness
}

/// How far a commit-order reader is held back: committed events it cannot
/// read yet (from transactions at or above the snapshot's xmin), and the age
/// of the oldest transaction holding them back.
pub async fn commit_order_held_back(pool: &sqlx::PgPool) -> Result<(i64, f64), sqlx::Error> {
    let (events, seconds): (i64, f64) =
        sqlx::query_as(include_str!("../sql/commit_order_held_back.sql"))
            .fetch_one(pool)
            .await?;
    metrics::gauge!("orders_commit_order_held_back_events").set(events as f64);
    metrics::gauge!("orders_commit_order_held_back_seconds").set(seconds);
    Ok((events, seconds))
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // Refresh the held-back gauges; a database error leaves their last values.
    let _ = commit_order_held_back(&state.pool).await;
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
