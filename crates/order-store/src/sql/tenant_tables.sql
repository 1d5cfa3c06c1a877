-- The tables of tenant data: every table of the current schema with a
-- tenant_id column, with the tables its foreign keys reference (which must
-- be distributed before it). (`!`: never NULL.)
SELECT c.relname::text AS "name!",
       array(SELECT f.relname::text
             FROM pg_constraint AS k
             JOIN pg_class AS f ON f.oid = k.confrelid
             WHERE k.conrelid = c.oid AND k.contype = 'f' AND f.oid <> c.oid) AS "references!"
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
ORDER BY c.relname
