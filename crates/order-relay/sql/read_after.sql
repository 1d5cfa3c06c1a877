-- The next committed events after the cursor ($1 transaction id, $2
-- position), in (transaction_id, position) order, only from transactions
-- that have ended (below the snapshot's xmin): a transaction still running
-- sorts after everything read so far, so none is ever skipped (the same
-- rule as the projection rebuild's reader). One commit order: no event
-- waits for a predecessor elsewhere (read_born_after.sql). The `!` tells
-- sqlx that the computed columns are never NULL.
SELECT transaction_id::text::bigint AS "xid!", position, tenant_id, aggregate_type,
       aggregate_id, sequence, event_type, event_version,
       payload::text AS "payload!", metadata::text AS "metadata!", recorded_at,
       NULL::bigint AS "previous_xid?", NULL::bigint AS "previous_position?",
       NULL::bigint AS "parked_size?", NULL::bigint AS "parked_limit?"
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id, position
LIMIT $3
