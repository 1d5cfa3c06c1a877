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
use crate::outbox::{lag, read_after, Cursor};
use crate::status::{backoff, Status};
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
    let mut cursor = load_checkpoint(&mut conn, &config.name).await?;
    tracing::info!(
        relay = %config.name,
        stream = %config.stream,
        transaction_id = cursor.transaction_id,
        position = cursor.position,
        "publishing from the checkpoint"
    );
    status.active();
    *failures = 0;
    let mut progress = Progress::default();
    let mut lag_checked: Option<Instant> = None;
    loop {
        if lag_checked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            let (events, seconds) = lag(&mut conn, cursor).await?;
            status.lag(events, seconds);
            lag_checked = Some(Instant::now());
        }
        let batch = read_after(&mut conn, cursor, config.batch_size).await?;
        let Some(last) = batch.last().map(|e| e.cursor()) else {
            progress.report(status, cursor);
            tokio::time::sleep(config.idle_poll).await;
            continue;
        };
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
        save_checkpoint(&mut conn, &config.name, last, published.stored).await?;
        status.published(published.stored, published.duplicates);
        progress.add(published.stored, published.duplicates);
        cursor = last;
        progress.report(status, cursor);
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

    fn report(&mut self, status: &Status, cursor: Cursor) {
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
                position = cursor.position,
                "relay progress"
            );
        }
        *self = Self::default();
    }
}
