SELECT sequence, event_type, event_version, payload
FROM stream_events_after($1, $2, $3, 0)
