//! Rebuilding the read model from the event store.
//!
//! 1. **Replay** (service running): events are read in (transaction id,
//!    position) order from transactions that have ended (see `reader`),
//!    folded through the same [`order_store::projection`] code as the live write
//!    path, and written in batches, one transaction each, into shadow tables
//!    (see `shadow`). A reader task decodes and folds the next batch while the
//!    current one is written.
//! 2. **Indexing**: the shadow tables get their unique keys, foreign keys,
//!    indexes and checks, built once over the loaded rows (and the order
//!    items their primary key: the replay only inserts them).
//! 3. **Cut-over**, one of:
//!    - *swap*: lock the tables in the order writers lock them (inventory,
//!      events, store_orders, store_order_items, store_checkout_abandonments,
//!      store_unpaid_holds:
//!      no deadlock with a checkout or an abandon), replay the last events, and swap the shadow tables in.
//!      Writers pause for the cut-over only; reads carry on until the swap's
//!      last instant. Nothing appended meanwhile is missed: under the locks no
//!      transaction that appends events can be running.
//!    - *verify*: in one REPEATABLE READ snapshot, replay the last events and
//!      compare shadow and live tables row by row. No lock: events and read
//!      model commit together, so in any snapshot the live tables must equal
//!      the fold of the events it shows.
//!    - *in place*: truncate and replay in one transaction, writers locked out
//!      throughout (maintenance windows).

mod compare;
mod progress;
mod reader;
mod shadow;

use std::time::{Duration, Instant};

pub use compare::{compare, table_checksum, DriftReport, TableDrift};
pub use progress::{RebuildProgress, Silent, Stage};
pub use reader::{read_committed, read_events, CommitCursor, EventCursor, ReadLimit};
pub use shadow::{ShadowTables, READ_MODEL_TABLES};

use shadow::RelaxedChecks;

use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::mpsc;

use order_store::projection::{write_changes, ReadModelChanges};
use order_store::StoreError;

/// Events per batch: enough to amortise round trips (measured: 10,000 is ~7%
/// faster than 5,000 on a million events), small enough that the rebuild's
/// memory stays near 64 MiB whatever the store's size.
pub const DEFAULT_BATCH_SIZE: i64 = 10_000;

/// Over this many committed-but-unreadable events (held back by a running
/// transaction), the swap waits for the horizon to move instead of catching
/// up under its locks, which would pause writers for longer.
pub const DEFAULT_MAX_EVENTS_UNDER_LOCK: i64 = 50_000;

/// What to do with the shadow tables once they are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildMode {
    Swap,
    Verify,
    InPlace,
}

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    pub mode: RebuildMode,
    pub batch_size: i64,
    /// The schema the shadow tables are built in (dropped first if a crashed
    /// rebuild left it behind).
    pub shadow_schema: String,
    /// How long one attempt to take a cut-over lock waits before reporting
    /// who holds it and trying again.
    pub lock_wait: Duration,
    /// See [`DEFAULT_MAX_EVENTS_UNDER_LOCK`].
    pub max_events_under_lock: i64,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            mode: RebuildMode::Swap,
            batch_size: DEFAULT_BATCH_SIZE,
            shadow_schema: "projection_rebuild".to_owned(),
            lock_wait: Duration::from_secs(1),
            max_events_under_lock: DEFAULT_MAX_EVENTS_UNDER_LOCK,
        }
    }
}

/// What a finished rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildSummary {
    pub mode: RebuildMode,
    pub events: u64,
    pub batches: u64,
    pub elapsed: Duration,
    /// Rows per read-model table after the rebuild.
    pub rows: Vec<(&'static str, i64)>,
    /// The comparison, in verify mode.
    pub drift: Option<DriftReport>,
}

impl RebuildSummary {
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.events as f64 / seconds
        } else {
            0.0
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("the database lacks migrations: {0}; run `order-service migrate` first")]
    MissingMigrations(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RebuildError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(err.into())
    }
}

/// SQLSTATE 55P03: `lock_timeout` ran out before the cut-over's locks were
/// all taken.
fn is_lock_not_available(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "55P03")
}

/// Rebuilds (or verifies) the read model. See the module documentation.
pub async fn rebuild(
    pool: &PgPool,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
) -> Result<RebuildSummary, RebuildError> {
    let started = Instant::now();
    let mut conn = pool.acquire().await.map_err(RebuildError::Connect)?;
    check_migrations(pool).await?;
    let in_store = sqlx::query_file_scalar!("sql/count_events.sql")
        .fetch_one(&mut *conn)
        .await?;
    progress.started(u64::try_from(in_store).unwrap_or(0));
    let mut tally = Tally::default();
    let mut drift = None;
    match options.mode {
        RebuildMode::InPlace => in_place(&mut conn, options, progress, &mut tally).await?,
        RebuildMode::Swap | RebuildMode::Verify => {
            let shadow = ShadowTables::create(&mut conn, &options.shadow_schema).await?;
            let outcome = async {
                progress.stage(Stage::Replaying);
                let start = CommitCursor::start(&mut conn).await?;
                let cursor =
                    replay_committed(pool, &shadow, start, options, progress, &mut tally).await?;
                progress.stage(Stage::Indexing);
                shadow.complete(&mut conn).await?;
                if cursor.is_cluster() && options.mode == RebuildMode::Swap {
                    shadow.distribute(&mut conn).await?;
                }
                if options.mode == RebuildMode::Verify {
                    drift = Some(
                        verify_in_snapshot(
                            &mut conn, &shadow, cursor, options, progress, &mut tally,
                        )
                        .await?,
                    );
                    Ok(())
                } else {
                    if held_back(&mut conn).await? > options.max_events_under_lock {
                        wait_for_horizon(&mut conn, options.max_events_under_lock, progress)
                            .await?;
                    }
                    let cursor =
                        replay_committed(pool, &shadow, cursor, options, progress, &mut tally)
                            .await?;
                    swap(&mut conn, &shadow, cursor, options, progress, &mut tally).await
                }
            }
            .await;
            if outcome.is_err() || options.mode == RebuildMode::Verify {
                shadow.drop(&mut conn).await?;
            }
            outcome?;
        }
    }
    let mut rows = Vec::with_capacity(READ_MODEL_TABLES.len());
    for table in READ_MODEL_TABLES {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await?;
        rows.push((table, count));
    }
    Ok(RebuildSummary {
        mode: options.mode,
        events: tally.events,
        batches: tally.batches,
        elapsed: started.elapsed(),
        rows,
        drift,
    })
}

/// Replays everything committed into a fresh shadow schema and compares it
/// with the live tables (`--verify`). The shadow schema is dropped after.
pub async fn verify(pool: &PgPool, shadow_schema: &str) -> Result<DriftReport, StoreError> {
    let options = RebuildOptions {
        mode: RebuildMode::Verify,
        shadow_schema: shadow_schema.to_owned(),
        ..RebuildOptions::default()
    };
    match rebuild(pool, &options, &Silent).await {
        Ok(summary) => Ok(summary.drift.unwrap_or_default()),
        Err(RebuildError::Store(e)) => Err(e),
        Err(other) => Err(StoreError::Internal(other.to_string())),
    }
}

#[derive(Debug, Default)]
struct Tally {
    events: u64,
    batches: u64,
}

impl Tally {
    fn add(&mut self, events: usize, progress: &dyn RebuildProgress) {
        let events = u64::try_from(events).unwrap_or(0);
        self.events += events;
        self.batches += 1;
        progress.applied(events);
    }
}

async fn check_migrations(pool: &PgPool) -> Result<(), RebuildError> {
    let missing = order_store::StoreProbe::new(pool.clone())
        .missing_migrations()
        .await?;
    if missing.is_empty() {
        Ok(())
    } else if missing.len() == order_store::up_migrations() {
        Err(RebuildError::MissingMigrations("none applied".into()))
    } else {
        Err(RebuildError::MissingMigrations(missing.join(", ")))
    }
}

/// A batch read and folded, ready to write.
struct FoldedBatch {
    last: CommitCursor,
    events: usize,
    changes: ReadModelChanges,
}

/// Replays every event of an ended transaction after the last one read,
/// batch by batch, into `shadow`. A reader task on its own connection reads,
/// decodes and folds the next batch while this one is written. Returns where
/// it stopped.
async fn replay_committed(
    pool: &PgPool,
    shadow: &ShadowTables,
    start: CommitCursor,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
    tally: &mut Tally,
) -> Result<CommitCursor, StoreError> {
    let (sender, mut batches) = mpsc::channel::<Result<FoldedBatch, StoreError>>(2);
    let reader_pool = pool.clone();
    let reader_start = start.clone();
    let batch_size = options.batch_size;
    let reader = tokio::spawn(async move {
        let mut conn = match reader_pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                let _ = sender.send(Err(e.into())).await;
                return;
            }
        };
        let mut cursor = reader_start;
        loop {
            let batch =
                read_committed(&mut conn, &cursor, batch_size, ReadLimit::EndedTransactions)
                    .await
                    .and_then(|(events, next)| fold(next, &events));
            // A short batch: caught up with the horizon as it was. The rest
            // (what commits meanwhile) is the catch-up's, under the
            // cut-over's locks or in the verify's snapshot: chasing live
            // writes here could go on for ever (on a cluster a read takes
            // long enough for the next events to arrive).
            let done = matches!(&batch, Ok(b) if i64::try_from(b.events).unwrap_or(i64::MAX) < batch_size)
                || batch.is_err();
            if let Ok(b) = &batch {
                cursor = b.last.clone();
            }
            if sender.send(batch).await.is_err() || done {
                return;
            }
        }
    });
    let mut writer = pool.acquire().await?;
    let mut cursor = start;
    while let Some(batch) = batches.recv().await {
        let batch = batch?;
        if batch.events == 0 {
            break;
        }
        let mut tx = writer.begin().await?;
        // A crash mid-rebuild loses at most the shadow's last batches, which
        // nobody reads before the cut-over commits (synchronously).
        sqlx::query("SET LOCAL synchronous_commit TO off")
            .execute(&mut *tx)
            .await?;
        shadow.use_in_transaction(&mut tx).await?;
        write_changes(&mut tx, &batch.changes).await?;
        tx.commit().await?;
        cursor = batch.last;
        tally.add(batch.events, progress);
    }
    reader.abort();
    Ok(cursor)
}

/// Folds `events` (read up to `last`) into read-model changes.
fn fold(
    last: CommitCursor,
    events: &[order_store::RecordedEvent],
) -> Result<FoldedBatch, StoreError> {
    let changes = ReadModelChanges::from_events(events.iter())
        .map_err(|e| StoreError::Internal(format!("cannot project events: {e}")))?;
    Ok(FoldedBatch {
        last,
        events: events.len(),
        changes,
    })
}

/// Replays the events after `cursor` that the connection's current snapshot
/// (or, under the cut-over locks, the database) shows, in this transaction.
async fn catch_up_here(
    conn: &mut PgConnection,
    shadow: Option<&ShadowTables>,
    mut cursor: CommitCursor,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
    tally: &mut Tally,
) -> Result<CommitCursor, StoreError> {
    loop {
        let (events, next) = read_committed(
            &mut *conn,
            &cursor,
            options.batch_size,
            ReadLimit::Everything,
        )
        .await?;
        if events.is_empty() {
            return Ok(cursor);
        }
        let batch = fold(next, &events)?;
        if let Some(shadow) = shadow {
            shadow.use_in_transaction(&mut *conn).await?;
        }
        write_changes(&mut *conn, &batch.changes).await?;
        cursor = batch.last;
        tally.add(batch.events, progress);
    }
}

async fn verify_in_snapshot(
    conn: &mut PgConnection,
    shadow: &ShadowTables,
    cursor: CommitCursor,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
    tally: &mut Tally,
) -> Result<DriftReport, StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    progress.stage(Stage::CatchingUp);
    catch_up_here(&mut tx, Some(shadow), cursor, options, progress, tally).await?;
    shadow.restore_checks(&mut tx).await?;
    progress.stage(Stage::Comparing);
    let report = compare(&mut tx, shadow).await?;
    tx.rollback().await?;
    Ok(report)
}

/// Committed events a commit-order reader cannot read yet.
async fn held_back(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_file_scalar!("sql/held_back.sql")
        .fetch_one(&mut *conn)
        .await?)
}

/// Waits while a running transaction holds back more events than the swap
/// should replay under its locks, saying which transaction it waits for.
async fn wait_for_horizon(
    conn: &mut PgConnection,
    max_events_under_lock: i64,
    progress: &dyn RebuildProgress,
) -> Result<(), StoreError> {
    loop {
        let held = held_back(&mut *conn).await?;
        if held <= max_events_under_lock {
            return Ok(());
        }
        let oldest = sqlx::query_file!("sql/oldest_writing_transaction.sql")
            .fetch_optional(&mut *conn)
            .await?;
        let who = oldest.map_or_else(
            || "a transaction that has ended meanwhile".to_owned(),
            |t| {
                format!(
                    "transaction of pid {}, running for {:.0} s ({})",
                    t.pid, t.seconds, t.query
                )
            },
        );
        progress.waiting(&format!(
            "{held} committed events are held back by {who}; not skipping them"
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Takes the cut-over locks in the order writers take theirs, retrying (and
/// saying who blocks) every `lock_wait`.
async fn lock_for_cut_over(
    conn: &mut PgConnection,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
) -> Result<(), StoreError> {
    let timeout = format!("{}ms", options.lock_wait.as_millis().max(1));
    loop {
        sqlx::query("SAVEPOINT cut_over_locks")
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!("SET LOCAL lock_timeout TO '{timeout}'"))
            .execute(&mut *conn)
            .await?;
        let mut locked = Ok(());
        for statement in [
            "LOCK TABLE inventory IN EXCLUSIVE MODE",
            "LOCK TABLE events IN EXCLUSIVE MODE",
            "LOCK TABLE store_orders, store_order_items, store_checkout_abandonments, \
             store_unpaid_holds IN EXCLUSIVE MODE",
        ] {
            if let Err(e) = sqlx::query(statement).execute(&mut *conn).await {
                locked = Err(e);
                break;
            }
        }
        match locked {
            Ok(_) => {
                sqlx::query("SET LOCAL lock_timeout TO 0")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("RELEASE SAVEPOINT cut_over_locks")
                    .execute(&mut *conn)
                    .await?;
                return Ok(());
            }
            Err(e) if is_lock_not_available(&e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT cut_over_locks")
                    .execute(&mut *conn)
                    .await?;
                let blockers = sqlx::query_file!("sql/cut_over_blockers.sql")
                    .fetch_all(&mut *conn)
                    .await?;
                let who: Vec<String> = blockers
                    .iter()
                    .map(|t| format!("pid {} ({:.0} s: {})", t.pid, t.seconds, t.query))
                    .collect();
                progress.waiting(&format!(
                    "waiting for running transactions to finish before the cut-over: {}",
                    if who.is_empty() {
                        "(short ones)".to_owned()
                    } else {
                        who.join("; ")
                    }
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn swap(
    conn: &mut PgConnection,
    shadow: &ShadowTables,
    cursor: CommitCursor,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    if cursor.is_cluster() {
        // One connection per worker for the whole transaction: Citus runs
        // no schema change (the swap) after a parallel multi-shard command
        // (the catch-up's reads and writes) in one transaction.
        sqlx::query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            .execute(&mut *tx)
            .await?;
    }
    progress.stage(Stage::Locking);
    lock_for_cut_over(&mut tx, options, progress).await?;
    progress.stage(Stage::CatchingUp);
    catch_up_here(&mut tx, Some(shadow), cursor, options, progress, tally).await?;
    shadow.restore_checks(&mut tx).await?;
    progress.stage(Stage::Swapping);
    sqlx::query("SET LOCAL search_path TO pg_catalog")
        .execute(&mut *tx)
        .await?;
    let retired = format!("{}_retired", shadow.schema());
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {retired} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {retired}"))
        .execute(&mut *tx)
        .await?;
    for table in READ_MODEL_TABLES.iter().rev() {
        sqlx::query(&format!(
            "ALTER TABLE {} SET SCHEMA {retired}",
            shadow.live(table)
        ))
        .execute(&mut *tx)
        .await?;
    }
    for table in READ_MODEL_TABLES {
        sqlx::query(&format!(
            "ALTER TABLE {} SET SCHEMA {}",
            shadow.qualified(table),
            shadow.live_schema()
        ))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!("DROP SCHEMA {retired} CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP SCHEMA {} CASCADE", shadow.schema()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Truncates the live read model and replays every event into it, in one
/// transaction that locks writers out throughout.
async fn in_place(
    conn: &mut PgConnection,
    options: &RebuildOptions,
    progress: &dyn RebuildProgress,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let live_schema = shadow::live_schema(&mut *conn).await?;
    let relaxed = RelaxedChecks::read(&mut *conn, &live_schema).await?;
    let start = CommitCursor::start(&mut *conn).await?;
    let mut tx = conn.begin().await?;
    if start.is_cluster() {
        // See `swap`: schema changes (the relaxed checks) after parallel
        // multi-shard commands need one connection per worker throughout.
        sqlx::query("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            .execute(&mut *tx)
            .await?;
    }
    progress.stage(Stage::Locking);
    lock_for_cut_over(&mut tx, options, progress).await?;
    sqlx::query(
        "TRUNCATE store_unpaid_holds, store_checkout_abandonments, store_order_items, \
         store_orders, inventory",
    )
    .execute(&mut *tx)
    .await?;
    relaxed.drop_from(&mut tx, &live_schema).await?;
    progress.stage(Stage::CatchingUp);
    catch_up_here(&mut tx, None, start, options, progress, tally).await?;
    relaxed.restore_into(&mut tx, &live_schema).await?;
    tx.commit().await?;
    Ok(())
}

/// The rebuild must be usable from a spawned task (a service running it in
/// the background): every future of this module is `Send`. Compile-time
/// check; sqlx's `raw_sql` was once the one that was not.
#[cfg(test)]
mod send_check {
    use super::*;

    fn is_send<T: Send>(_: T) {}

    #[allow(dead_code)]
    fn rebuild_futures_are_send(
        pool: &PgPool,
        conn: &mut PgConnection,
        shadow: &ShadowTables,
        tally: &mut Tally,
    ) {
        let options = RebuildOptions::default();
        is_send(lock_for_cut_over(conn, &options, &Silent));
        is_send(swap(
            conn,
            shadow,
            CommitCursor::default(),
            &options,
            &Silent,
            tally,
        ));
        is_send(in_place(conn, &options, &Silent, tally));
        is_send(rebuild(pool, &options, &Silent));
    }
}
