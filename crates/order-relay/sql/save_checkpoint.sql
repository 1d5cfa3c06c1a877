-- Advances the checkpoint, never backwards: a relay that has lost its lock
-- (and so its connection) cannot write, and if one ever could, an older
-- cursor would change nothing. With it, the JetStream sequence of the last
-- acknowledged message: every message published after it has a higher one.
INSERT INTO relay_checkpoints AS c (name, transaction_id, position, published, updated_at,
                                    stream_sequence)
VALUES ($1, $2::text::xid8, $3, $4, now(), $5)
ON CONFLICT (name) DO UPDATE
SET transaction_id  = excluded.transaction_id,
    position        = excluded.position,
    published       = c.published + excluded.published,
    updated_at      = excluded.updated_at,
    stream_sequence = greatest(c.stream_sequence, excluded.stream_sequence)
WHERE (c.transaction_id, c.position) < (excluded.transaction_id, excluded.position)
