-- The tables of tenant data: every table of the current schema with a
-- tenant_id column, `events` first (the others are colocated with it),
-- then by name. (`!`: never NULL.)
SELECT c.relname::text AS "name!"
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
ORDER BY c.relname <> 'events', c.relname
