-- Status changes. Each row remembers the last event of its stream applied to
-- it; an event at or below that sequence changes nothing.
UPDATE store_orders AS o
SET status              = u.status,
    updated_at          = u.updated_at,
    last_event_sequence = u.sequence
FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::bigint[])
    AS u (id, status, updated_at, sequence)
WHERE o.id = u.id
  AND o.last_event_sequence < u.sequence
