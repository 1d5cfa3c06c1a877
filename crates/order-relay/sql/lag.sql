-- Committed events not yet published (held back or not yet read), and the
-- age of the oldest of them (never NULL: `!` for sqlx).
SELECT count(*) AS "events!",
       COALESCE(extract(epoch FROM now() - min(recorded_at)), 0)::float8 AS "seconds!"
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
