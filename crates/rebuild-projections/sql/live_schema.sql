-- The schema the read-model tables live in: the one `store_orders` resolves
-- to on the search path (no row before the migrations).
SELECT n.nspname::text AS "schema!"
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('store_orders')
