//! The relay's loop: lead, read, publish, checkpoint.
//!
//! 1. Connect to PostgreSQL (one connection: it holds the lock, reads the
//!    events and writes the checkpoint, so losing it loses all three at
//!    once) and take the relay's advisory lock; while another relay holds
//!    it, wait (standby) and try again every `lock_retry`.
//! 2. Load the checkpoint: the last event JetStream acknowledged.
//! 3. Read the next committed events after it (gap-safe order), publish them
//!    in order, wait for every acknowledgement, then advance the checkpoint
//!    to the last of them. A crash anywhere republishes at most the batch
//!    that was not checkpointed; JetStream drops what it already has.
//! 4. PostgreSQL trouble: drop the connection (and the lock), back off,
//!    start again at 1. JetStream trouble: keep the lock, back off, publish
//!    the same batch again.
//!
//! On a Citus cluster each node's events (`order_store::commit_order`) have
//! a lock and a checkpoint of their own: step 1 becomes "lead the nodes no
//! other relay of this name leads", tried again every `lock_retry`, and a
//! stream continued from a node another relay leads waits for that relay's
//! checkpoint.

use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::jetstream::{
    ensure_stream, publish_in_order, stream_is_missing, Permanent, PublishFailure,
};
use order_store::commit_order::{
    event_placement, events_are_distributed, group_of, positions_of_group, EventPlacement,
    NodeHorizon,
};

use crate::outbox::{lag, lag_born, read_after, read_born_after, Cursor, OutboxEvent};
use crate::status::{backoff, NodeLag, Status};
use crate::RelayConfig;

/// Longest wait for a connection to PostgreSQL.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `shutdown` resolves.
pub async fn run(
    config: &RelayConfig,
    jetstream: &Context,
    broker: &async_nats::Client,
    status: &Status,
    shutdown: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let session = tokio::select! {
            outcome = lead_and_publish(config, jetstream, broker, status, &mut failures) => outcome,
            () = &mut *shutdown => return Ok(()),
        };
        if let Err(error) = session {
            if error.downcast_ref::<Permanent>().is_some() {
                return Err(error);
            }
            failures += 1;
            let kind = if error.downcast_ref::<sqlx::Error>().is_some() {
                "database"
            } else if error.downcast_ref::<PublishFailure>().is_some() {
                "broker"
            } else {
                "other"
            };
            status.failing(kind, format!("{error:#}"));
            tracing::warn!(
                error = format!("{error:#}"),
                "relay interrupted; starting again"
            );
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                () = &mut *shutdown => return Ok(()),
            }
        }
    }
}

/// One session: a connection, the lock, and publishing until something
/// fails.
async fn lead_and_publish(
    config: &RelayConfig,
    jetstream: &Context,
    broker: &async_nats::Client,
    status: &Status,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let options: PgConnectOptions = config
        .database_url
        .parse::<PgConnectOptions>()?
        .application_name("order-service relay")
        // PostgreSQL drops the session of a relay whose host died or was
        // cut off within about 25 s (10 s idle, then 3 probes 5 s apart),
        // and with it the lock, so a standby takes over; no statement of
        // the relay runs for more than 30 s.
        .options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
            ("statement_timeout", "30s"),
        ])
        .disable_statement_logging();
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to PostgreSQL took over {CONNECT_TIMEOUT:?}"))??;
    let distributed = events_are_distributed(&mut conn).await?;
    let mut feeds: Vec<Feed> = Vec::new();
    if !distributed {
        // One commit order and one lock: wait for it.
        let mut announced_standby = false;
        while !try_lead(&mut conn, &config.name).await? {
            if !announced_standby {
                tracing::info!(relay = %config.name, "another relay is publishing; standing by");
                announced_standby = true;
            }
            status.standby();
            tokio::time::sleep(config.lock_retry).await;
        }
        prepare_stream(&mut conn, jetstream, config).await?;
        let cursor = load_checkpoint(&mut conn, &config.name).await?;
        tracing::info!(
            relay = %config.name,
            stream = %config.stream,
            transaction_id = cursor.transaction_id,
            position = cursor.position,
            "publishing from the checkpoint"
        );
        feeds.push(Feed {
            checkpoint: config.name.clone(),
            group: 0,
            node: None,
            cursor,
            lag: (0, 0.0),
            problem: None,
        });
        status.active();
        *failures = 0;
    } else {
        prepare_stream(&mut conn, jetstream, config).await?;
    }
    let mut progress = Progress::default();
    let mut lag_checked: Option<Instant> = None;
    let mut leadership_tried: Option<Instant> = None;
    let mut announced_standby = false;
    loop {
        let due = lag_checked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        let mut batch = Vec::new();
        let mut read: Vec<(usize, Cursor)> = Vec::new();
        if distributed {
            let EventPlacement::Cluster(horizons) = event_placement(&mut conn).await? else {
                anyhow::bail!("events is no longer distributed: starting again as a single node");
            };
            // Each node's events have a leader of their own: take the
            // nodes this relay follows that no relay of its name leads
            // (new nodes too), trying again every `lock_retry`.
            if leadership_tried.is_none_or(|at| at.elapsed() >= config.lock_retry) {
                leadership_tried = Some(Instant::now());
                for horizon in &horizons {
                    let followed = config
                        .groups
                        .as_ref()
                        .is_none_or(|groups| groups.contains(&horizon.group));
                    if !followed || feeds.iter().any(|f| f.group == horizon.group) {
                        continue;
                    }
                    let checkpoint = checkpoint_of(&config.name, horizon.group);
                    if !try_lead(&mut conn, &checkpoint).await? {
                        continue;
                    }
                    let cursor = load_checkpoint(&mut conn, &checkpoint).await?;
                    tracing::info!(
                        relay = %checkpoint,
                        node = %horizon.node,
                        stream = %config.stream,
                        transaction_id = cursor.transaction_id,
                        position = cursor.position,
                        "publishing the events born on a node"
                    );
                    feeds.push(Feed {
                        checkpoint,
                        group: horizon.group,
                        node: Some(node_name(horizon)),
                        cursor,
                        lag: (0, 0.0),
                        problem: None,
                    });
                    if feeds.len() == 1 {
                        status.active();
                        *failures = 0;
                    }
                }
                if feeds.is_empty() {
                    if !announced_standby {
                        tracing::info!(relay = %config.name, "other relays publish every node this one follows; standing by");
                        announced_standby = true;
                    }
                    status.standby();
                }
            }
            if feeds.is_empty() {
                tokio::time::sleep(config.lock_retry).await;
                continue;
            }
            // How far each node's events are published, counting those
            // taken into this batch: a stream's event waits for its
            // predecessor born on another node, published by this relay
            // or by the one leading that node (its checkpoint).
            let mut reached: Vec<(i32, Cursor)> =
                feeds.iter().map(|f| (f.group, f.cursor)).collect();
            for (at, feed) in feeds.iter_mut().enumerate() {
                let positions = positions_of_group(feed.group);
                if due {
                    feed.lag = lag_born(&mut conn, feed.cursor, positions).await?;
                }
                let xmin = match horizons.iter().find(|h| h.group == feed.group) {
                    Some(NodeHorizon { xmin: Ok(xmin), .. }) => *xmin,
                    Some(NodeHorizon { xmin: Err(why), .. }) => {
                        feed.problem = Some(format!("cannot read its commit horizon: {why}"));
                        continue;
                    }
                    None => {
                        feed.problem = Some(
                            "no longer a node of the cluster: its events not yet published stay unread (docs/SCALE-OUT.md, \"Removing a worker\")".to_owned(),
                        );
                        continue;
                    }
                };
                feed.problem = None;
                let mut events =
                    read_born_after(&mut conn, feed.cursor, xmin, positions, config.batch_size)
                        .await?;
                for previous in events
                    .iter()
                    .filter_map(OutboxEvent::previous_born_elsewhere)
                {
                    let group = group_of(previous.position);
                    if !reached.iter().any(|(g, _)| *g == group) {
                        let checkpoint = checkpoint_of(&config.name, group);
                        reached.push((group, load_checkpoint(&mut conn, &checkpoint).await?));
                    }
                }
                if let Some(waiting) = events.iter().position(|e| {
                    e.previous_born_elsewhere().is_some_and(|previous| {
                        let group = group_of(previous.position);
                        !reached
                            .iter()
                            .any(|(g, cursor)| *g == group && *cursor >= previous)
                    })
                }) {
                    events.truncate(waiting);
                }
                if let Some(last) = events.last() {
                    if let Some(entry) = reached.iter_mut().find(|(g, _)| *g == feed.group) {
                        entry.1 = last.cursor();
                    }
                    read.push((at, last.cursor()));
                }
                batch.extend(events);
            }
        } else {
            if due {
                if events_are_distributed(&mut conn).await? {
                    anyhow::bail!("events was distributed over a Citus cluster: starting again to read each node's commit order");
                }
                feeds[0].lag = lag(&mut conn, feeds[0].cursor).await?;
            }
            batch = read_after(&mut conn, feeds[0].cursor, config.batch_size).await?;
            if let Some(last) = batch.last() {
                read.push((0, last.cursor()));
            }
        }
        if due {
            let held = sqlx::query_file_scalar!("sql/locks_held.sql")
                .fetch_one(&mut conn)
                .await?;
            if usize::try_from(held).unwrap_or(0) < feeds.len() {
                return Err(Permanent(format!(
                    "the relay's session holds {held} of the {} advisory locks it took: is DATABASE_URL a connection \
                     pooler in transaction mode (PgBouncer)? Leadership is a session's lock: connect the relay \
                     directly or through session pooling",
                    feeds.len()
                ))
                .into());
            }
            status.lag(feeds.iter().map(Feed::report).collect());
            lag_checked = Some(Instant::now());
        }
        if batch.is_empty() {
            status.progressed();
            progress.report(status, &feeds);
            tokio::time::sleep(config.idle_poll).await;
            continue;
        }
        park_oversized(&mut conn, broker, config, &mut batch).await?;
        let mut attempt = 0;
        let published = loop {
            match publish_in_order(jetstream, &batch).await {
                Ok(published) => break published,
                Err(error) => {
                    status.failing("broker", format!("cannot publish: {error}"));
                    let no_stream = matches!(
                        error,
                        PublishFailure::NotAcknowledged {
                            no_stream: true,
                            ..
                        }
                    );
                    if no_stream && stream_is_missing(jetstream, &config.stream).await {
                        return Err(Permanent(format!(
                            "JetStream stream {} was deleted while the relay published into it: \
                             stopping (the lock is released). To publish every event again into a new stream, \
                             start the relay with ORDERS_RELAY_REPUBLISH_FROM_START=true",
                            config.stream
                        ))
                        .into());
                    }
                    attempt += 1;
                    tracing::warn!(%error, attempt, "publishing failed; publishing the batch again");
                    tokio::time::sleep(backoff(attempt)).await;
                    // Still the leader? A lost connection ends the session.
                    sqlx::query("SELECT 1").execute(&mut conn).await?;
                }
            }
        };
        if attempt > 0 {
            status.active();
        }
        // Every node's events of the batch are acknowledged: each feed's
        // checkpoint moves to its last one (the count goes with the first).
        let mut count = published.stored;
        for (at, last) in read {
            save_checkpoint(&mut conn, &feeds[at].checkpoint, last, count).await?;
            feeds[at].cursor = last;
            count = 0;
        }
        status.published(published.stored, published.duplicates);
        status.progressed();
        progress.add(published.stored, published.duplicates);
        progress.report(status, &feeds);
    }
}

/// Checks (or creates) the stream before anything is published: refused
/// when it is missing although this relay published into it, unless the
/// operator asked to publish every event again from the first
/// (`ORDERS_RELAY_REPUBLISH_FROM_START`: every checkpoint of this relay's
/// name goes back to the start; stop its other relays first).
async fn prepare_stream(
    conn: &mut PgConnection,
    jetstream: &Context,
    config: &RelayConfig,
) -> anyhow::Result<()> {
    let mut published = sqlx::query_file_scalar!("sql/published_before.sql", config.name)
        .fetch_one(&mut *conn)
        .await?;
    if published
        && config.republish_from_start
        && stream_is_missing(jetstream, &config.stream).await
    {
        tracing::warn!(
            relay = %config.name,
            stream = %config.stream,
            "the stream is missing: publishing every event again from the first, as asked (ORDERS_RELAY_REPUBLISH_FROM_START)"
        );
        sqlx::query_file!("sql/start_from_the_first_event.sql", config.name)
            .execute(&mut *conn)
            .await?;
        published = false;
    }
    ensure_stream(
        jetstream,
        &config.stream,
        config.duplicate_window,
        published,
    )
    .await
}

/// Events whose message would exceed the broker's `max_payload`: recorded
/// in `relay_parked_events` and published as a placeholder under the same
/// message id (docs/EVENTS.md), so that one oversized event neither stops
/// the relay (the broker refuses it and drops the connection, for ever)
/// nor leaves a gap in the stream.
async fn park_oversized(
    conn: &mut PgConnection,
    broker: &async_nats::Client,
    config: &RelayConfig,
    batch: &mut [OutboxEvent],
) -> anyhow::Result<()> {
    let max_payload = broker.server_info().max_payload;
    if max_payload == 0 {
        // Not connected yet: publishing fails and is retried.
        return Ok(());
    }
    // Room for the subject and the headers (Nats-Msg-Id).
    let limit = max_payload.saturating_sub(1024);
    for event in batch.iter_mut() {
        if event.estimated_size() <= limit {
            continue;
        }
        let size = event.envelope()?.len();
        if size <= limit {
            continue;
        }
        let (tenant, kind, id, sequence) = event.coordinates();
        sqlx::query_file!(
            "sql/park_event.sql",
            tenant,
            kind,
            id,
            sequence,
            config.name,
            event.cursor().position,
            i64::try_from(size).unwrap_or(i64::MAX),
            i64::try_from(max_payload).unwrap_or(i64::MAX)
        )
        .execute(&mut *conn)
        .await?;
        tracing::warn!(
            tenant,
            stream = %format!("{kind}/{id}"),
            sequence,
            size,
            max_payload,
            "an event's message exceeds the broker's max_payload: parked (relay_parked_events), a placeholder published in its place"
        );
        metrics::counter!("orders_relay_parked_total").increment(1);
        event.park(size, max_payload);
    }
    Ok(())
}

/// The checkpoint (and leadership lock) of the events born on `group`:
/// the relay's own name for the coordinator (group 0, and the whole store
/// on a single PostgreSQL: a relay goes on across `distribute`),
/// `{name}@group{group}` for every other node.
fn checkpoint_of(name: &str, group: i32) -> String {
    if group == 0 {
        name.to_owned()
    } else {
        format!("{name}@group{group}")
    }
}

/// How `/readyz` and the metrics name a node.
fn node_name(horizon: &NodeHorizon) -> String {
    if horizon.group == 0 {
        "coordinator".to_owned()
    } else {
        horizon.node.clone()
    }
}

/// Takes the leadership lock of `checkpoint` if no other relay holds it.
async fn try_lead(conn: &mut PgConnection, checkpoint: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_file_scalar!("sql/try_lead.sql", checkpoint)
        .fetch_one(conn)
        .await?)
}

/// One commit order the relay follows, with its own checkpoint: the whole
/// store on one PostgreSQL, or on a cluster the events born on one node
/// (`order_store::commit_order`). The coordinator's feed keeps the relay's
/// own name, so a relay that ran before `distribute` goes on from its
/// checkpoint; every other node's is `{name}@group{group}`.
#[derive(Debug)]
struct Feed {
    checkpoint: String,
    group: i32,
    /// On a cluster: the node, for `/readyz` and the metrics.
    node: Option<String>,
    cursor: Cursor,
    /// Events not yet published and the age of the oldest, as last asked.
    lag: (i64, f64),
    /// Why this node's events cannot be read now.
    problem: Option<String>,
}

impl Feed {
    fn report(&self) -> NodeLag {
        NodeLag {
            node: self.node.clone(),
            checkpoint: self.checkpoint.clone(),
            lag_events: self.lag.0,
            lag_seconds: self.lag.1,
            problem: self.problem.clone(),
        }
    }
}

async fn load_checkpoint(conn: &mut PgConnection, name: &str) -> anyhow::Result<Cursor> {
    let row = sqlx::query_file!("sql/load_checkpoint.sql", name)
        .fetch_optional(conn)
        .await?;
    Ok(row.map_or(Cursor::default(), |row| Cursor {
        transaction_id: row.xid,
        position: row.position,
    }))
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    cursor: Cursor,
    published: u64,
) -> anyhow::Result<()> {
    sqlx::query_file!(
        "sql/save_checkpoint.sql",
        name,
        cursor.transaction_id.to_string(),
        cursor.position,
        i64::try_from(published).unwrap_or(i64::MAX)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A progress line in the log, at most every 10 seconds and only when
/// something happened.
#[derive(Debug)]
struct Progress {
    since: Instant,
    stored: u64,
    duplicates: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            stored: 0,
            duplicates: 0,
        }
    }
}

impl Progress {
    fn add(&mut self, stored: u64, duplicates: u64) {
        self.stored += stored;
        self.duplicates += duplicates;
    }

    fn report(&mut self, status: &Status, feeds: &[Feed]) {
        let elapsed = self.since.elapsed();
        if elapsed < Duration::from_secs(10) {
            return;
        }
        if self.stored + self.duplicates > 0 {
            let readiness = status.snapshot();
            tracing::info!(
                published = self.stored,
                duplicates = self.duplicates,
                per_second = (self.stored as f64 / elapsed.as_secs_f64()).round(),
                lag_events = readiness.lag_events,
                lag_seconds = readiness.lag_seconds,
                position = feeds.iter().map(|f| f.cursor.position).max().unwrap_or(0),
                "relay progress"
            );
        }
        *self = Self::default();
    }
}
