-- On a Citus cluster: the committed events born on one node (positions in
-- [$1, $2)) that a commit-order reader cannot read yet, those of its
-- transactions at or above its xmin ($3, asked of it just before), and
-- how long the oldest of them has waited (never NULL: `!` for sqlx).
SELECT count(*) AS "events!",
       COALESCE(extract(epoch FROM now() - min(recorded_at)), 0)::float8 AS "seconds!"
FROM events
WHERE position >= $1 AND position < $2
  AND transaction_id >= $3::text::xid8
