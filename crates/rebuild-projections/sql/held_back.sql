-- Committed events a commit-order reader cannot read yet: those of
-- transactions at or above the snapshot's xmin (`!`: never NULL).
SELECT count(*) AS "events!"
FROM events
WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
