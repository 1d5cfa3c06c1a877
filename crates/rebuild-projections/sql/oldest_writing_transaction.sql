-- The oldest other transaction that has written something: the one holding
-- the commit-order horizon back, named for the operator. (`!`: the
-- computed columns are never NULL.)
SELECT pid AS "pid!",
       coalesce(extract(epoch FROM now() - xact_start), 0)::float8 AS "seconds!",
       left(coalesce(query, ''), 80) AS "query!"
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY xact_start
LIMIT 1
