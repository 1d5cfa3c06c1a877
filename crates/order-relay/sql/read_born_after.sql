-- On a Citus cluster: the next committed events born on one node (their
-- positions in [$4, $5), the node's identity range) after that node's
-- cursor ($1 transaction id, $2 position), in the node's commit order, only
-- from its transactions below $3, its snapshot's xmin asked just before
-- (order_store::commit_order). Wherever the rows live now: a moved shard
-- keeps their positions and transaction ids. With each, the commit-order
-- coordinates of its stream's previous event when that one was born on
-- another node (a stream continued after a shard move, or after the move
-- from one node onto the cluster): the relay holds an event back until
-- its predecessor is published, so each stream stays in order. The `!`
-- tells sqlx that the computed columns are never NULL, `?` that they may be.
SELECT e.transaction_id::text::bigint AS "xid!", e.position, e.tenant_id, e.aggregate_type,
       e.aggregate_id, e.sequence, e.event_type, e.event_version,
       e.payload::text AS "payload!", e.metadata::text AS "metadata!", e.recorded_at,
       p.transaction_id::text::bigint AS "previous_xid?", p.position AS "previous_position?",
       NULL::bigint AS "parked_size?", NULL::bigint AS "parked_limit?"
FROM events AS e
LEFT JOIN events AS p
       ON p.tenant_id = e.tenant_id AND p.aggregate_type = e.aggregate_type
      AND p.aggregate_id = e.aggregate_id AND p.sequence = e.sequence - 1
      AND (p.position < $4 OR p.position >= $5)
WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2)
  AND e.transaction_id < $3::text::xid8
  AND e.position >= $4 AND e.position < $5
ORDER BY e.transaction_id, e.position
LIMIT $6
