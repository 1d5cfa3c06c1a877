-- Least privilege and a pinned search_path for the write path.
--
-- 1. The write path's PL/pgSQL functions resolve names through a search_path
--    of their own: the schema these migrations run in, then pg_temp, last.
--    A same-named table or function in a schema earlier in a caller's
--    search_path can no longer receive the service's writes.
--    project_read_model stays unpinned on purpose: the projection rebuild
--    calls it with a search_path that leads to its shadow tables; from
--    append_to_stream it runs under append_to_stream's pinned path.
--
-- 2. The service's rights, as the group role store_orders_app (NOLOGIN):
--    read and append events (no UPDATE, DELETE or TRUNCATE; it owns
--    nothing, so it can neither disable the append-only trigger nor change
--    the schema), read and write the read model, read the migrations table
--    (for /readyz). The login role the service connects with is made a
--    member of it: `GRANT store_orders_app TO order_service;` (README,
--    "Database roles"). Migrations and the rebuild run as the schema owner.
--    Roles are cluster-wide: the role is created once, here, if this
--    migration may (CREATEROLE); otherwise a notice says to create it.
--
-- 3. commit_order_lag(): how far a commit-order reader (the rebuild, the
--    relay) is held back, for /readyz and /metrics. It needs the start time
--    of other roles' transactions, which pg_stat_activity shows only to
--    privileged roles; as a SECURITY DEFINER function it shows the service
--    two numbers and nothing else of other sessions.

CREATE FUNCTION commit_order_lag(OUT events bigint, OUT seconds float8)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    WITH held AS (
        SELECT count(*) AS events
        FROM events
        WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
    )
    SELECT held.events,
           CASE WHEN held.events = 0 THEN 0::float8
                ELSE COALESCE((SELECT extract(epoch FROM now() - min(a.xact_start))::float8
                               FROM pg_stat_activity AS a
                               WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()), 0)
           END
    FROM held
$$;
REVOKE EXECUTE ON FUNCTION commit_order_lag() FROM PUBLIC;

DO $$
DECLARE
    target text := quote_ident(current_schema());
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_to_stream(text, text, text, bigint, new_event[], '
        'stock_guard_row[], catalogue_price[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[]) SET search_path = %s, pg_temp', target);
    EXECUTE format(
        'ALTER FUNCTION append_events(new_event[], stock_guard_row[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[]) SET search_path = %s, pg_temp', target);
    EXECUTE format(
        'ALTER FUNCTION events_are_append_only() SET search_path = %s, pg_temp', target);
    EXECUTE format(
        'ALTER FUNCTION commit_order_lag() SET search_path = %s, pg_temp', target);
END;
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'store_orders_app') THEN
        BEGIN
            CREATE ROLE store_orders_app NOLOGIN;
        EXCEPTION
            -- Another database's migration created it at the same moment.
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role store_orders_app here: create it (NOLOGIN) and re-run the migrations';
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO store_orders_app', current_schema());
    GRANT SELECT, INSERT ON events TO store_orders_app;
    GRANT SELECT, INSERT, UPDATE ON store_orders, store_order_items, inventory TO store_orders_app;
    GRANT SELECT ON _sqlx_migrations TO store_orders_app;
    GRANT USAGE ON SEQUENCE events_position_seq TO store_orders_app;
    GRANT EXECUTE ON FUNCTION commit_order_lag() TO store_orders_app;
END;
$$;
