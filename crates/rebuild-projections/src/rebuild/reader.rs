//! Reading the event store in commit order, safely.
//!
//! Positions are handed out when a transaction inserts, not when it commits,
//! so position order is not commit order: a transaction holding position 5
//! can commit after the one holding 6. A reader that advanced past 6 would
//! skip 5 for ever. Instead we read in (transaction_id, position) order, and
//! only from transactions below the snapshot's xmin, which have all ended:
//! anything that commits later has a transaction id at or above that xmin,
//! so it sorts after everything read so far.
//!
//! On a Citus cluster there is one such order per node (an event's birth
//! node: `order_store::commit_order`), so a [`CommitCursor`] keeps one
//! cursor per node, and a read takes each node's next events below that
//! node's xmin; an event whose stream's previous event was born on another
//! node waits until that one has been read, so each stream folds in order.

use sqlx::PgConnection;

use order_store::commit_order::{
    event_placement, events_are_distributed, group_of, positions_of_group, EventPlacement,
};
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
    /// On a cluster (`sql/read_events_born.sql`): the stream's previous
    /// event, when another node gave it birth; NULL otherwise.
    previous_xid: Option<i64>,
    previous_position: Option<i64>,
}

/// Where a replay stands in commit order: one cursor on a single
/// PostgreSQL, one per birth node on a Citus cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitCursor {
    /// `None` on a single PostgreSQL.
    cluster: Option<Vec<(i32, EventCursor)>>,
    single: EventCursor,
}

impl CommitCursor {
    /// The start of the store, read the way its events are placed.
    pub async fn start(conn: &mut PgConnection) -> Result<Self, StoreError> {
        Ok(Self {
            cluster: events_are_distributed(conn).await?.then(Vec::new),
            single: EventCursor::default(),
        })
    }

    /// Whether the store is distributed over a Citus cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    fn of(&self, group: i32) -> EventCursor {
        self.cluster
            .as_ref()
            .and_then(|nodes| nodes.iter().find(|(g, _)| *g == group))
            .map_or_else(EventCursor::default, |(_, c)| *c)
    }

    fn advance(&mut self, group: i32, to: EventCursor) {
        if let Some(nodes) = self.cluster.as_mut() {
            match nodes.iter_mut().find(|(g, _)| *g == group) {
                Some(entry) => entry.1 = to,
                None => nodes.push((group, to)),
            }
        }
    }
}

/// Reads up to `limit` events per node after `cursor`, in an order that
/// folds each stream in sequence, and where that leaves the cursor.
pub async fn read_committed(
    conn: &mut PgConnection,
    cursor: &CommitCursor,
    limit: i64,
    read_limit: ReadLimit,
) -> Result<(Vec<RecordedEvent>, CommitCursor), StoreError> {
    let mut next = cursor.clone();
    if cursor.cluster.is_none() {
        let events = read_events(conn, cursor.single, limit, read_limit).await?;
        if let Some((last, _)) = events.last() {
            next.single = *last;
        }
        return Ok((events.into_iter().map(|(_, e)| e).collect(), next));
    }
    // Every node's horizon (its xmin); under the cut-over's locks no
    // writer runs, and every committed event may be read.
    let horizons: Vec<(i32, i64)> = match read_limit {
        ReadLimit::EndedTransactions => match event_placement(conn).await? {
            EventPlacement::Cluster(nodes) => nodes
                .into_iter()
                .map(|n| {
                    n.xmin.map(|xmin| (n.group, xmin)).map_err(|why| {
                        StoreError::Internal(format!(
                            "cannot read node {}'s commit horizon: {why}",
                            n.node
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            EventPlacement::SingleNode => {
                return Err(StoreError::Internal(
                    "events is no longer distributed: start again".into(),
                ))
            }
        },
        ReadLimit::Everything => sqlx::query_scalar::<_, i32>(
            "SELECT 0 UNION SELECT groupid FROM pg_dist_node WHERE noderole = 'primary' ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|group| (group, i64::MAX))
        .collect(),
    };
    let mut events = Vec::new();
    for (group, xmin) in horizons {
        let positions = positions_of_group(group);
        let after = next.of(group);
        let rows = sqlx::query_file_as!(
            EventRow,
            "sql/read_events_born.sql",
            after.transaction_id.to_string(),
            after.position,
            xmin.to_string(),
            positions.0,
            positions.1,
            limit
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            if let (Some(xid), Some(position)) = (row.previous_xid, row.previous_position) {
                let previous = EventCursor {
                    transaction_id: xid,
                    position,
                };
                if next.of(group_of(position)) < previous {
                    // Its stream's previous event is still to be read.
                    break;
                }
            }
            let (at, event) = decode_row(row)?;
            next.advance(group, at);
            events.push(event);
        }
    }
    Ok((events, next))
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
