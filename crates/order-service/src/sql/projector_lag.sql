-- Events committed but not yet readable in commit order, and how long the
-- oldest transaction that holds them back has been running.
WITH held AS (
    SELECT count(*) AS events
    FROM events
    WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
)
SELECT held.events,
       CASE WHEN held.events = 0 THEN 0::float8
            ELSE COALESCE((SELECT extract(epoch FROM now() - min(xact_start))::float8
                           FROM pg_stat_activity
                           WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()), 0)
       END AS seconds
FROM held
