-- Advances the checkpoint, never backwards: a relay that has lost its lock
-- (and so its connection) cannot write, and if one ever could, an older
-- cursor would change nothing.
INSERT INTO relay_checkpoints AS c (name, transaction_id, position, published, updated_at)
VALUES ($1, $2::text::xid8, $3, $4, now())
ON CONFLICT (name) DO UPDATE
SET transaction_id = excluded.transaction_id,
    position       = excluded.position,
    published      = c.published + excluded.published,
    updated_at     = excluded.updated_at
WHERE (c.transaction_id, c.position) < (excluded.transaction_id, excluded.position)
