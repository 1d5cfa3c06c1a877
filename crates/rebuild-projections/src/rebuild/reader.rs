//! Reading the event store in commit order, safely.
//!
//! Positions are handed out when a transaction inserts, not when it commits,
//! so position order is not commit order: a transaction holding position 5
//! can commit after the one holding 6. A reader that advanced past 6 would
//! skip 5 for ever. Instead we read in (transaction_id, position) order, and
//! only from transactions below the snapshot's xmin, which have all ended:
//! anything that commits later has a transaction id at or above that xmin,
//! so it sorts after everything read so far.

use sqlx::PgConnection;

use order_store::StoreError;
use order_store::{RecordedEvent, ShopEvent};

/// Where a replay stands: the last event read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct EventCursor {
    pub transaction_id: i64,
    pub position: i64,
}

/// Which events a read may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLimit {
    /// Only events of ended transactions: safe while appends go on.
    EndedTransactions,
    /// Every visible event: only while appends are locked out.
    Everything,
}

/// A row of `sql/read_events_*.sql`, checked against them at compile time.
struct EventRow {
    /// The transaction id (aliased: an output column named `transaction_id`
    /// would capture the ORDER BY and defeat the index).
    xid: i64,
    position: i64,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    tenant_id: String,
}

/// Reads up to `limit` events after `cursor`. An event that cannot be decoded
/// is an error naming its position and stream: never a panic, never a
/// silent stop.
pub async fn read_events(
    conn: &mut PgConnection,
    cursor: EventCursor,
    limit: i64,
    read_limit: ReadLimit,
) -> Result<Vec<(EventCursor, RecordedEvent)>, StoreError> {
    let after = cursor.transaction_id.to_string();
    let rows = match read_limit {
        ReadLimit::EndedTransactions => {
            sqlx::query_file_as!(
                EventRow,
                "sql/read_events_below_horizon.sql",
                after,
                cursor.position,
                limit
            )
            .fetch_all(&mut *conn)
            .await?
        }
        ReadLimit::Everything => {
            sqlx::query_file_as!(
                EventRow,
                "sql/read_events_all.sql",
                after,
                cursor.position,
                limit
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    rows.into_iter().map(decode_row).collect()
}

fn decode_row(row: EventRow) -> Result<(EventCursor, RecordedEvent), StoreError> {
    let unreadable = |reason: String| StoreError::UnreadableEvent {
        stream: format!(
            "{}/{} at position {}",
            row.aggregate_type, row.aggregate_id, row.position
        ),
        sequence: row.sequence,
        reason,
    };
    let event = ShopEvent::decode_text(
        &row.aggregate_type,
        &row.event_type,
        &row.event_version,
        &row.payload,
    )
    .map_err(|e| unreadable(e.to_string()))?;
    let tenant = row
        .tenant_id
        .as_str()
        .try_into()
        .map_err(|e: order_domain::InvalidValue| unreadable(e.to_string()))?;
    Ok((
        EventCursor {
            transaction_id: row.xid,
            position: row.position,
        },
        RecordedEvent {
            aggregate_id: row.aggregate_id,
            sequence: row.sequence,
            tenant,
            event,
        },
    ))
}
