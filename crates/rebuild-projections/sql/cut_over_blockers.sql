-- Up to three running transactions of this database that have written
-- something: what the cut-over's locks wait for, named for the operator.
-- (`!`: the computed columns are never NULL.)
SELECT pid AS "pid!",
       coalesce(extract(epoch FROM now() - xact_start), 0)::float8 AS "seconds!",
       left(coalesce(query, ''), 80) AS "query!"
FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND datname = current_database()
  AND xact_start IS NOT NULL AND state <> 'idle'
  AND backend_xid IS NOT NULL
ORDER BY xact_start
LIMIT 3
