-- The next events in transaction order, only from transactions that have
-- ended: transaction_id < xmin of the current snapshot. A transaction still
-- running has an id at or above xmin, so its events (whatever positions they
-- got) are read in a later call, never skipped. Cursor: ($1, $2). The `!`
-- tells sqlx that the two computed columns are never NULL.
SELECT transaction_id::text::bigint AS "xid!", position, aggregate_type,
       aggregate_id, sequence, event_type, event_version, payload::text AS "payload!",
       tenant_id, NULL::bigint AS "previous_xid?", NULL::bigint AS "previous_position?"
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3
