SELECT sequence, event_type, event_version, payload::text AS payload
FROM events
WHERE tenant_id = $1
  AND aggregate_type = $2
  AND aggregate_id = $3
ORDER BY sequence
