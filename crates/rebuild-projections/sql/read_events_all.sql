-- As read_events_below_horizon, without the horizon: for when no transaction
-- that appends events can be running (the rebuild holds the cut-over locks).
SELECT transaction_id::text::bigint AS "xid!", position, aggregate_type,
       aggregate_id, sequence, event_type, event_version, payload::text AS "payload!",
       tenant_id, NULL::bigint AS "previous_xid?", NULL::bigint AS "previous_position?"
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
ORDER BY transaction_id, position
LIMIT $3
