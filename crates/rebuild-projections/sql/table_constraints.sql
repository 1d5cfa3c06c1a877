-- The tables' constraints of one kind ($2: 'p' primary key, 'u' unique,
-- 'f' foreign key, 'c' check) as (table, quoted name, definition).
SELECT c.conrelid::regclass::text AS "table!",
       quote_ident(c.conname::text) AS "name!",
       pg_get_constraintdef(c.oid) AS "definition!"
FROM pg_constraint c
WHERE c.conrelid = ANY($1::text[]::regclass[])
  AND c.contype::text = $2::text
ORDER BY c.conname
