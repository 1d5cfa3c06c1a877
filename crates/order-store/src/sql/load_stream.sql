-- A stream's events in sequence order, by (tenant, kind, id): the same
-- function append_to_stream answers a moved-on stream with (migration 5).
-- The `!` tells sqlx the function's columns are never NULL (they are the
-- events table's NOT NULL columns); it cannot see through a function.
SELECT sequence AS "sequence!", event_type AS "event_type!",
       event_version AS "event_version!", payload AS "payload!"
FROM stream_events_after($1, $2, $3, 0)
