-- A stream's events in sequence order, by (tenant, kind, id): the lookup
-- append_to_stream answers a moved-on stream with (migration 11). A plain
-- query, routed by tenant on a distributed PostgreSQL.
SELECT sequence, event_type, event_version, payload::text AS "payload!"
FROM events
WHERE tenant_id = $1 AND aggregate_type = $2 AND aggregate_id = $3
ORDER BY sequence
