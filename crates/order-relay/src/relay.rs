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

use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::jetstream::{ensure_stream, publish_in_order};
use order_store::commit_order::{
    event_placement, events_are_distributed, group_of, positions_of_group, EventPlacement,
    NodeHorizon,
};

use crate::outbox::{lag, lag_born, read_after, read_born_after, Cursor};
use crate::status::{backoff, NodeLag, Status};
use crate::RelayConfig;

/// Runs until `shutdown` resolves.
pub async fn run(
    config: &RelayConfig,
    jetstream: &Context,
    status: &Status,
    shutdown: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let session = tokio::select! {
            outcome = lead_and_publish(config, jetstream, status, &mut failures) => outcome,
            () = &mut *shutdown => return Ok(()),
        };
        if let Err(error) = session {
            failures += 1;
            status.failing(format!("{error:#}"));
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
    status: &Status,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let options: PgConnectOptions = config
        .database_url
        .parse::<PgConnectOptions>()?
        .application_name("order-service relay")
        .disable_statement_logging();
    let mut conn = PgConnection::connect_with(&options).await?;
    let mut announced_standby = false;
    loop {
        let leading = sqlx::query_file_scalar!("sql/try_lead.sql", config.name)
            .fetch_one(&mut conn)
            .await?;
        if leading {
            break;
        }
        if !announced_standby {
            tracing::info!(relay = %config.name, "another relay is publishing; standing by");
            announced_standby = true;
        }
        status.standby();
        tokio::time::sleep(config.lock_retry).await;
    }
    ensure_stream(jetstream, &config.stream, config.duplicate_window).await?;
    let distributed = events_are_distributed(&mut conn).await?;
    let mut feeds = vec![Feed {
        checkpoint: config.name.clone(),
        group: 0,
        node: if distributed {
            Some("coordinator".to_owned())
        } else {
            None
        },
        cursor: load_checkpoint(&mut conn, &config.name).await?,
        lag: (0, 0.0),
        problem: None,
    }];
    tracing::info!(
        relay = %config.name,
        stream = %config.stream,
        transaction_id = feeds[0].cursor.transaction_id,
        position = feeds[0].cursor.position,
        cluster = distributed,
        "publishing from the checkpoint"
    );
    status.active();
    *failures = 0;
    let mut progress = Progress::default();
    let mut lag_checked: Option<Instant> = None;
    loop {
        let due = lag_checked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        let mut batch = Vec::new();
        let mut read: Vec<(usize, Cursor)> = Vec::new();
        if distributed {
            let EventPlacement::Cluster(horizons) = event_placement(&mut conn).await? else {
                anyhow::bail!("events is no longer distributed: starting again as a single node");
            };
            for horizon in &horizons {
                if !feeds.iter().any(|f| f.group == horizon.group) {
                    let checkpoint = format!("{}@group{}", config.name, horizon.group);
                    let cursor = load_checkpoint(&mut conn, &checkpoint).await?;
                    tracing::info!(relay = %checkpoint, node = %horizon.node, "publishing the events born on a node");
                    feeds.push(Feed {
                        checkpoint,
                        group: horizon.group,
                        node: Some(horizon.node.clone()),
                        cursor,
                        lag: (0, 0.0),
                        problem: None,
                    });
                }
            }
            // How far each node's events are published, counting those
            // taken into this batch: a stream's event waits for its
            // predecessor born on another node.
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
            status.lag(feeds.iter().map(Feed::report).collect());
            lag_checked = Some(Instant::now());
        }
        if batch.is_empty() {
            progress.report(status, &feeds);
            tokio::time::sleep(config.idle_poll).await;
            continue;
        }
        let mut attempt = 0;
        let published = loop {
            match publish_in_order(jetstream, &batch).await {
                Ok(published) => break published,
                Err(error) => {
                    attempt += 1;
                    status.failing(format!("cannot publish: {error}"));
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
        progress.add(published.stored, published.duplicates);
        progress.report(status, &feeds);
    }
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
