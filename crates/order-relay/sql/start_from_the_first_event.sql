-- Every checkpoint of this relay back to before the first event (an
-- operator's explicit choice: the stream was deleted and is to be filled
-- again from the start), and to the new stream's first message.
UPDATE relay_checkpoints
SET transaction_id = '0'::xid8, position = 0, stream_sequence = 0, updated_at = now()
WHERE name = $1 OR left(name, length($1) + 6) = $1 || '@group'
