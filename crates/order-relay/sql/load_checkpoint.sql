-- The relay's cursor (`!`: the cast is never NULL, for sqlx).
SELECT transaction_id::text::bigint AS "xid!", position
FROM relay_checkpoints
WHERE name = $1
