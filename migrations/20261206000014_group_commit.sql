-- Group commit (issue 23): the appends of one tenant that arrive while the
-- service's writers are busy are stored in one transaction, by one call.
--
-- Each append is exactly the call the service makes for a lone append
-- (append_to_stream: look at the stream, lock, look again, check prices and
-- stock, insert, project), run in its own subtransaction so that one
-- append's failure never undoes its neighbours':
--   - a unique violation on the stream's keys (a concurrent append on
--     another connection or replica won the stream) answers that append
--     'conflict' (the caller loads the stream and decides again);
--   - a deadlock, serialization failure or lock timeout answers it
--     'transient' (the caller sends it again);
--   - any other error aborts the whole call: the service then stores each
--     append of the batch alone, so each caller gets its own answer.
-- Refusals (moved, unknown, repriced, short) are answers, not errors: they
-- store nothing and leave the rest of the batch alone.
--
-- Locks are taken in one order across the whole batch: first every
-- inventory row any append checks or changes, in SKU order (the order a
-- lone append takes them in), then the streams in the order of the batch,
-- which the service sorts by stream. Two batches on two connections
-- therefore wait for each other, never on each other.
--
-- The arrays of every append are passed concatenated; batched_append says
-- where each append's part of each array ends (1-based, inclusive; equal
-- to the previous end when the append has none).
--
-- A subtransaction that writes takes a subtransaction id; PostgreSQL keeps
-- 64 of them per transaction in shared memory before readers must look
-- them up on disk, so the service bounds a batch well below that.

CREATE TYPE batched_append AS (
    aggregate_type text,
    aggregate_id text,
    expected bigint,
    events_end int,
    guard_end int,
    prices_end int,
    products_end int,
    stock_end int,
    orders_end int,
    updates_end int,
    items_end int
);

CREATE FUNCTION append_batch(
    p_tenant text,
    p_appends batched_append[],
    p_events new_event[],
    p_guard stock_guard_row[],
    p_prices catalogue_price[],
    p_products read_model_product[],
    p_stock read_model_stock_change[],
    p_orders read_model_order[],
    p_updates read_model_order_update[],
    p_items read_model_order_item[])
RETURNS TABLE (append_no int, outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    a batched_append;
    n int := 0;
    events_from int := 1;
    guard_from int := 1;
    prices_from int := 1;
    products_from int := 1;
    stock_from int := 1;
    orders_from int := 1;
    updates_from int := 1;
    items_from int := 1;
    v_constraint text;
BEGIN
    IF cardinality(p_guard) > 0 THEN
        PERFORM 1
        FROM inventory AS i
        WHERE i.tenant_id = p_tenant
          AND i.sku IN (SELECT g.sku FROM unnest(p_guard) AS g)
        ORDER BY i.sku
        FOR UPDATE OF i;
    END IF;

    FOREACH a IN ARRAY p_appends LOOP
        n := n + 1;
        BEGIN
            RETURN QUERY
            SELECT n, r.outcome, r.sku, r.requested, r.available, r.sequence, r.event_type,
                   r.event_version, r.payload
            FROM append_to_stream(
                p_tenant, a.aggregate_type, a.aggregate_id, a.expected,
                p_events[events_from:a.events_end],
                p_guard[guard_from:a.guard_end],
                p_prices[prices_from:a.prices_end],
                p_products[products_from:a.products_end],
                p_stock[stock_from:a.stock_end],
                p_orders[orders_from:a.orders_end],
                p_updates[updates_from:a.updates_end],
                p_items[items_from:a.items_end]) AS r;
        EXCEPTION
            WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                -- On a Citus worker the constraint carries its shard's id.
                IF v_constraint ~ '^(events_pkey|events_one_stream_per_key)(_[0-9]+)?$' THEN
                    RETURN QUERY SELECT n, 'conflict'::text, NULL::text, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text;
                ELSE
                    RAISE;
                END IF;
            WHEN deadlock_detected OR serialization_failure OR lock_not_available THEN
                RETURN QUERY SELECT n, 'transient'::text, NULL::text, NULL::bigint,
                    NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text;
        END;
        events_from := a.events_end + 1;
        guard_from := a.guard_end + 1;
        prices_from := a.prices_end + 1;
        products_from := a.products_end + 1;
        stock_from := a.stock_end + 1;
        orders_from := a.orders_end + 1;
        updates_from := a.updates_end + 1;
        items_from := a.items_end + 1;
    END LOOP;
END;
$$;

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_batch(text, batched_append[], new_event[], stock_guard_row[], '
        'catalogue_price[], read_model_product[], read_model_stock_change[], '
        'read_model_order[], read_model_order_update[], read_model_order_item[]) '
        'SET search_path = %s, pg_temp', quote_ident(current_schema()));
END;
$$;
