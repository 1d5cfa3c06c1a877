-- One active relay per checkpoint name: a session-level advisory lock, held
-- as long as the relay's connection lives.
SELECT pg_try_advisory_lock(hashtextextended('store-orders relay ' || $1, 0)) AS "leading!"
