-- On a Citus cluster: the committed events born on one node (positions in
-- [$3, $4)) not yet published after its cursor, and the age of the oldest
-- (never NULL: `!` for sqlx).
SELECT count(*) AS "events!",
       COALESCE(extract(epoch FROM now() - min(recorded_at)), 0)::float8 AS "seconds!"
FROM events
WHERE (transaction_id, position) > ($1::text::xid8, $2)
  AND position >= $3 AND position < $4
