-- The checkpoint a relay that now leads publishes from: its cursor, its
-- chain (given one, `$2`, the first time) and the stream sequence saved
-- with it. The row is created at the start (position 0) when missing.
-- (`!`: never NULL, for sqlx.)
INSERT INTO relay_checkpoints AS c (name, transaction_id, position, published, updated_at, chain)
VALUES ($1, '0'::xid8, 0, 0, now(), $2::text::uuid)
ON CONFLICT (name) DO UPDATE
SET chain = coalesce(c.chain, excluded.chain)
RETURNING c.transaction_id::text::bigint AS "xid!", c.position AS "position!",
          c.chain::text AS "chain!", c.stream_sequence AS "stream_sequence!",
          c.chain = $2::text::uuid AS "new_chain!"
