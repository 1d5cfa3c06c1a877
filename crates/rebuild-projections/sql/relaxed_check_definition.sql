-- The definition of one constraint of one table (`!`: never NULL for a
-- constraint that exists).
SELECT pg_get_constraintdef(c.oid) AS "definition!"
FROM pg_constraint c
WHERE c.conrelid = $1::text::regclass AND c.conname::text = $2::text
