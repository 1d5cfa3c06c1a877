//! Rebuilding the read model from the event store.
//!
//! The replay folds events through the same [`crate::projection`] code as the
//! live write path, in (transaction id, position) order (see `reader`), in
//! batches written with one transaction each, into shadow tables (see
//! `shadow`).

mod compare;
mod reader;
mod shadow;

pub use compare::{compare, table_checksum, DriftReport, TableDrift};
pub use reader::{read_events, EventCursor, ReadLimit};
pub use shadow::{ShadowTables, READ_MODEL_TABLES};

use sqlx::{Acquire, PgConnection, PgPool};

use crate::error::StoreError;
use crate::projection::{write_changes, ReadModelChanges};

/// Events per batch: enough to amortise round trips, small enough that a
/// batch's rows stay a few MiB.
pub const DEFAULT_BATCH_SIZE: i64 = 5_000;

/// Replays one batch of events after `cursor` into `shadow`, in its own
/// transaction. Returns the new cursor and how many events it applied (0 when
/// there is nothing more to read under `limit`).
pub async fn replay_batch(
    conn: &mut PgConnection,
    shadow: &ShadowTables,
    cursor: EventCursor,
    batch_size: i64,
    limit: ReadLimit,
) -> Result<(EventCursor, usize), StoreError> {
    let events = read_events(&mut *conn, cursor, batch_size, limit).await?;
    let Some((last, _)) = events.last() else {
        return Ok((cursor, 0));
    };
    let last = *last;
    let changes = ReadModelChanges::from_events(events.iter().map(|(_, e)| e))
        .map_err(|e| StoreError::Internal(format!("cannot project events: {e}")))?;
    let mut tx = conn.begin().await?;
    shadow.use_in_transaction(&mut tx).await?;
    write_changes(&mut tx, &changes).await?;
    tx.commit().await?;
    Ok((last, events.len()))
}

/// Replays everything already committed into a fresh shadow schema, then
/// compares it with the live tables, row by row, without taking any lock:
/// writers carry on throughout.
///
/// The final catch-up and the comparison run in one REPEATABLE READ snapshot.
/// Events and read-model rows commit together, so in that snapshot the live
/// tables are exactly the fold of the events the snapshot shows; the shadow,
/// caught up to the same events, must equal them.
pub async fn verify(pool: &PgPool, shadow_schema: &str) -> Result<DriftReport, StoreError> {
    let mut conn = pool.acquire().await?;
    let shadow = ShadowTables::create(&mut conn, shadow_schema).await?;
    let result = verify_into(&mut conn, &shadow).await;
    shadow.drop(&mut conn).await?;
    result
}

async fn verify_into(
    conn: &mut PgConnection,
    shadow: &ShadowTables,
) -> Result<DriftReport, StoreError> {
    let mut cursor = EventCursor::default();
    loop {
        let (next, applied) = replay_batch(
            &mut *conn,
            shadow,
            cursor,
            DEFAULT_BATCH_SIZE,
            ReadLimit::EndedTransactions,
        )
        .await?;
        cursor = next;
        if applied == 0 {
            break;
        }
    }
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    loop {
        let events =
            read_events(&mut tx, cursor, DEFAULT_BATCH_SIZE, ReadLimit::Everything).await?;
        let Some((last, _)) = events.last() else {
            break;
        };
        cursor = *last;
        let changes = ReadModelChanges::from_events(events.iter().map(|(_, e)| e))
            .map_err(|e| StoreError::Internal(format!("cannot project events: {e}")))?;
        shadow.use_in_transaction(&mut tx).await?;
        write_changes(&mut tx, &changes).await?;
    }
    shadow.restore_checks(&mut tx).await?;
    let report = compare(&mut tx, shadow).await?;
    tx.rollback().await?;
    Ok(report)
}
