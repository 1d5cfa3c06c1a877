-- How many advisory locks this session holds: one per commit order the
-- relay leads. Fewer than it took means the session is not the one that
-- took them (a pooler in transaction mode hands each statement to any
-- server session) or they were released behind the relay's back.
SELECT count(*) AS "held!"
FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
