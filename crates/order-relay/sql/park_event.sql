-- An event whose message exceeds the broker's max_payload, recorded before
-- its placeholder is published (again after a crash: nothing changes).
INSERT INTO relay_parked_events
    (tenant_id, aggregate_type, aggregate_id, sequence, relay, position, size_bytes, max_payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT DO NOTHING
