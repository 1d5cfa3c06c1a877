-- The definitions of the tables' indexes that no constraint owns (those
-- come with their constraints), in creation order.
SELECT pg_get_indexdef(i.indexrelid) AS "definition!"
FROM pg_index i
WHERE i.indrelid = ANY($1::text[]::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY i.indexrelid
