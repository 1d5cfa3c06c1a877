SELECT transaction_id::text::bigint AS xid, position, published
FROM relay_checkpoints
WHERE name = $1
