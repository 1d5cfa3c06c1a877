//! Reading events in commit order, on one PostgreSQL or on a Citus cluster.
//!
//! The readers that follow the store in commit order (the relay, and the
//! rebuild's catch-up) read events in `(transaction_id, position)` order,
//! only from transactions below a snapshot's xmin: a transaction still
//! running sorts after everything read so far, so none is skipped. That
//! rule needs transaction ids that one node assigned and one node's xmin.
//!
//! On a Citus cluster every node has its own transaction ids, and an event
//! takes both its `transaction_id` and its `position` from the node that
//! ran its append (the delegated `append_to_stream`: Citus gives the
//! identity sequence of each node its own range, `group << 48`). So every
//! event names its **birth node** by its position, and the events born on
//! one node are in that node's commit order, wherever they live now: a
//! shard moved to another worker (`citus_move_shard_placement`) carries its
//! rows with their positions and transaction ids, and they are still read
//! by their birth node's reader. Events of the single-node past (before
//! `distribute`) were born on the coordinator (group 0), with its ids.
//!
//! A reader of a cluster therefore keeps one cursor per birth node and,
//! for each, reads the events of the node's position range below the
//! node's own xmin (asked of the node just before the read: an older xmin
//! is still safe, every transaction below it ended before the read began).
//!
//! Citus's catalogue exists only on a cluster, so those queries are bound
//! at run time.

use sqlx::PgConnection;

/// How many positions each node's identity range holds (Citus: a node's
/// sequence starts at `group << 48`).
pub const POSITIONS_PER_NODE: i64 = 1 << 48;

/// Where the store's events are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPlacement {
    /// One PostgreSQL (or a Citus coordinator where `events` is not
    /// distributed): one commit order.
    SingleNode,
    /// `events` is distributed: one commit order per node (see the module).
    Cluster(Vec<NodeHorizon>),
}

/// A node of a cluster as a birthplace of events, and how far its commit
/// order can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHorizon {
    /// Citus's group id (0: the coordinator).
    pub group: i32,
    /// `host:port`, for messages and metrics.
    pub node: String,
    /// The node's snapshot xmin, or why it could not be asked.
    pub xmin: Result<i64, String>,
}

impl NodeHorizon {
    /// The positions of the events born on this node: `[from, to)`.
    pub fn positions(&self) -> (i64, i64) {
        positions_of_group(self.group)
    }
}

/// `[from, to)` of the positions group `group` assigns.
pub fn positions_of_group(group: i32) -> (i64, i64) {
    let group = i64::from(group.max(0));
    (
        group.saturating_mul(POSITIONS_PER_NODE),
        (group + 1).saturating_mul(POSITIONS_PER_NODE),
    )
}

/// The group of the node that gave birth to the event at `position`.
pub fn group_of(position: i64) -> i32 {
    i32::try_from(position.max(0) / POSITIONS_PER_NODE).unwrap_or(i32::MAX)
}

/// Whether `events` is distributed here (a Citus coordinator after
/// `distribute`).
pub async fn events_are_distributed(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let citus: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            .fetch_one(&mut *conn)
            .await?;
    if !citus {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'events'::regclass)",
    )
    .fetch_one(&mut *conn)
    .await
}

/// Where the events are, and on a cluster each node's horizon: the
/// coordinator's (group 0) from this connection, every other primary's
/// asked through Citus in one round trip. A node that does not answer is
/// listed with why.
pub async fn event_placement(conn: &mut PgConnection) -> Result<EventPlacement, sqlx::Error> {
    if !events_are_distributed(conn).await? {
        return Ok(EventPlacement::SingleNode);
    }
    let rows: Vec<(i32, String, bool, Option<String>)> = sqlx::query_as(
        "SELECT 0, 'coordinator', true, pg_snapshot_xmin(pg_current_snapshot())::text \
         UNION ALL \
         SELECT n.groupid, n.nodename || ':' || n.nodeport, r.success, r.result \
         FROM run_command_on_all_nodes('SELECT pg_snapshot_xmin(pg_current_snapshot())') AS r \
         JOIN pg_dist_node AS n USING (nodeid) \
         WHERE n.groupid <> 0 AND n.noderole = 'primary' \
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(EventPlacement::Cluster(
        rows.into_iter()
            .map(|(group, node, success, result)| {
                let result = result.unwrap_or_default();
                let xmin = if success {
                    result
                        .trim()
                        .parse::<i64>()
                        .map_err(|e| format!("its xmin {result:?} is not a number: {e}"))
                } else {
                    Err(result)
                };
                NodeHorizon { group, node, xmin }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_owns_the_positions_its_sequence_hands_out() {
        assert_eq!(positions_of_group(0), (0, 281_474_976_710_656));
        let (from, to) = positions_of_group(1);
        assert_eq!(
            from, 281_474_976_710_656,
            "Citus' first position on group 1 is this + 1"
        );
        assert_eq!(to, 2 * 281_474_976_710_656);
        assert!(positions_of_group(2).0 == to);
        assert_eq!(group_of(1), 0);
        assert_eq!(group_of(from + 1), 1);
        assert_eq!(group_of(to), 2);
    }
}
