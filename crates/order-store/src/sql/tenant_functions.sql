-- The functions of the current schema that take the tenant as an argument
-- named p_tenant: the write path, delegated to the node that holds the
-- tenant. Their signatures as create_distributed_function takes them.
-- (`!`: never NULL.)
SELECT p.oid::regprocedure::text AS "signature!"
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema() AND 'p_tenant' = ANY (p.proargnames)
ORDER BY 1
