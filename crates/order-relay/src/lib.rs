//! The outbox relay: every committed event of the store, published once to
//! NATS JetStream, for the systems downstream (fulfilment, e-mail,
//! invoicing, analytics). The events table *is* the outbox: an event is
//! published because it committed, never one that rolled back.
//!
//! Run as `order-service relay` (the one binary); several may run, one
//! publishes. The guarantees, the subjects and the message body are in
//! docs/EVENTS.md.
//!
//! # Layout
//!
//! - `relay.rs`: the loop: take the advisory lock, read after the
//!   checkpoint, publish, wait for every acknowledgement, advance the
//!   checkpoint; reconnect with backoff. On a Citus cluster, one checkpoint
//!   per node's commit order (`order_store::commit_order`), one chain.
//! - `outbox.rs`: reading committed events in gap-safe order; the subject,
//!   message id and JSON envelope of each.
//! - `jetstream.rs`: the stream (created if missing), pipelined,
//!   de-duplicated publishing in rounds (one event per stream per round),
//!   so each stream stays in order with no chain across the whole stream,
//!   reading a relay's own chain of messages back (what the stream holds
//!   after its checkpoint), and the chain markers beside the stream
//!   (`{stream}_RELAY_CHAINS`) that let the broker refuse a stale leader.
//! - `status.rs`: `/readyz`, `/healthz`, Prometheus metrics (lag, published).
//! - `../sql/`: the relay's queries, one whole statement per file, checked
//!   against the migrated schema at compile time (`query_file_as!`, `.sqlx/`).

mod jetstream;
mod outbox;
mod relay;
mod status;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

pub use outbox::{Cursor, OutboxEvent};
pub use status::{NodeLag, Readiness};

/// Everything the relay needs, read once at start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub database_url: String,
    pub nats_url: String,
    /// The JetStream stream (created if missing).
    pub stream: String,
    /// The relay's name: its checkpoint row and its lock. Relays with the
    /// same name share one checkpoint, and one of them publishes.
    pub name: String,
    /// Where `/readyz` and `/metrics` are served.
    pub bind: SocketAddr,
    /// How long JetStream remembers a message id: a republished event
    /// within it is dropped. Must cover a relay's restart or takeover.
    pub duplicate_window: Duration,
    /// Events read and published at once.
    pub batch_size: i64,
    /// On a Citus cluster: the nodes (Citus group ids, `pg_dist_node.groupid`)
    /// whose events this relay may publish; `None`: every node. Each node's
    /// events have their own leadership lock, so relays of one name share
    /// the nodes out, one relay per node at a time.
    pub groups: Option<Vec<i32>>,
    /// Pause when there is nothing to publish.
    pub idle_poll: Duration,
    /// How often a standby relay tries to take over.
    pub lock_retry: Duration,
    /// Longest wait for JetStream's acknowledgements.
    pub ack_timeout: Duration,
    /// When the stream is missing although this relay published into it
    /// (deleted): publish every event again from the first into a new one,
    /// instead of refusing to start.
    pub republish_from_start: bool,
}

impl RelayConfig {
    pub const DEFAULT_NATS_URL: &'static str = "nats://127.0.0.1:4222";
    pub const DEFAULT_STREAM: &'static str = "ORDER_EVENTS";
    pub const DEFAULT_BIND: &'static str = "127.0.0.1:8081";
    /// Ten minutes: far longer than a restart or a takeover (seconds).
    pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
}

/// Runs the relay until `shutdown` resolves.
pub async fn run(
    config: RelayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Bad configuration is a clear error and a non-zero exit, before
    // anything starts.
    config
        .database_url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    config
        .nats_url
        .parse::<async_nats::ServerAddr>()
        .map_err(|e| anyhow::anyhow!("NATS_URL {:?} is not a NATS URL: {e}", config.nats_url))?;
    let metrics = status::prometheus()?;
    let status = status::Status::default();
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {} (ORDERS_RELAY_BIND)", config.bind))?;
    tracing::info!(address = %listener.local_addr()?, "relay status on /readyz and /metrics");
    let reporting = status::router(status.clone(), metrics);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, reporting).await {
            tracing::error!(%error, "the relay's status server stopped");
        }
    });
    let client = async_nats::ConnectOptions::new()
        .name("order-service relay")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|event| async move {
            tracing::info!(%event, "NATS connection");
        })
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {} (NATS_URL)", config.nats_url))?;
    let broker = client.clone();
    let mut jetstream = async_nats::jetstream::new(client);
    jetstream.set_timeout(config.ack_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    relay::run(&config, &jetstream, &broker, &status, &mut shutdown).await?;
    tracing::info!("relay stopped");
    Ok(())
}
