-- append_to_stream (migration 15), the write path of an append stored on
-- its own (a batch of one, or ORDERS_WRITERS=0), checked an append's new
-- orders against the bounds on unpaid orders with two calls of the SQL
-- function unpaid_orders_placed (a query each: its pinned search_path keeps
-- PostgreSQL from inlining it) and a query per customer. Here, as migration
-- 17 did for append_batch, the append's order rows are walked in PL/pgSQL
-- expressions: one query per customer for what it holds, none for the new
-- orders. Same signature, same answers; CREATE OR REPLACE keeps the
-- function's grants and its distribution on a cluster, and drops its
-- pinned search_path, set again at the end.

CREATE OR REPLACE FUNCTION append_to_stream(
    p_tenant text,
    p_aggregate_type text,
    p_aggregate_id text,
    p_expected bigint,
    p_events new_event[],
    p_guard stock_guard_row[],
    p_prices catalogue_price[],
    p_products read_model_product[],
    p_stock read_model_stock_change[],
    p_orders read_model_order[],
    p_updates read_model_order_update[],
    p_items read_model_order_item[],
    p_unpaid_orders bigint,
    p_unpaid_units bigint)
RETURNS TABLE (outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    refused record;
    locked boolean := false;
    bounded boolean := (p_unpaid_orders IS NOT NULL OR p_unpaid_units IS NOT NULL)
                       AND cardinality(p_orders) > 0;
    -- The customers the append places an order for (in customer order, the
    -- order of their locks) and what each holds as its orders are counted
    -- (same positions).
    customers text[] := '{}';
    held_orders bigint[] := '{}';
    held_units bigint[] := '{}';
    holds_orders bigint;
    holds_units bigint;
    o read_model_order;
    slot int;
BEGIN
    RETURN QUERY
    SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, e.sequence, e.event_type,
           e.event_version, e.payload::text
    FROM events AS e
    WHERE e.tenant_id = p_tenant AND e.aggregate_type = p_aggregate_type
      AND e.aggregate_id = p_aggregate_id AND e.sequence > p_expected
    ORDER BY e.sequence;
    IF FOUND THEN
        RETURN;
    END IF;

    IF cardinality(p_guard) > 0 THEN
        PERFORM 1
        FROM inventory AS i
        JOIN unnest(p_guard) AS g ON i.sku = g.sku
        WHERE i.tenant_id = p_tenant
        ORDER BY i.sku
        FOR UPDATE OF i;
        locked := true;
    END IF;

    IF bounded THEN
        FOREACH o IN ARRAY p_orders LOOP
            IF o.status = 'placed' AND NOT o.customer_id = ANY (customers) THEN
                customers := customers || o.customer_id;
            END IF;
        END LOOP;
        -- An order stream holds one order: more than one customer (and a
        -- query to sort them) only for an append of several orders.
        IF cardinality(customers) > 1 THEN
            SELECT array_agg(c ORDER BY c) INTO customers FROM unnest(customers) AS c;
        END IF;
        FOR slot IN 1 .. cardinality(customers) LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended(
                'store-orders unpaid ' || p_tenant || ' ' || customers[slot], 0));
            locked := true;
        END LOOP;
    END IF;

    -- A duplicate that waited for a lock is a replay, answered as such.
    IF locked THEN
        RETURN QUERY
        SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, e.sequence, e.event_type,
               e.event_version, e.payload::text
        FROM events AS e
        WHERE e.tenant_id = p_tenant AND e.aggregate_type = p_aggregate_type
          AND e.aggregate_id = p_aggregate_id AND e.sequence > p_expected
        ORDER BY e.sequence;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    IF cardinality(p_prices) > 0 THEN
        SELECT c.sku AS sku, i.sku IS NULL AS unknown
        INTO refused
        FROM unnest(p_prices) AS c
        LEFT JOIN inventory AS i ON i.tenant_id = p_tenant AND i.sku = c.sku
        WHERE i.sku IS NULL
           OR i.name <> c.name OR i.unit_price <> c.unit_price OR i.currency <> c.currency
        ORDER BY c.sku
        LIMIT 1;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN refused.unknown THEN 'unknown' ELSE 'repriced' END,
                refused.sku, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::text,
                NULL::text;
            RETURN;
        END IF;
    END IF;

    IF cardinality(p_guard) > 0 THEN
        SELECT g.sku AS sku, -g.delta AS requested, i.on_hand AS available
        INTO refused
        FROM unnest(p_guard) AS g
        LEFT JOIN inventory AS i ON i.tenant_id = p_tenant AND i.sku = g.sku
        WHERE g.delta IS NOT NULL AND (i.sku IS NULL OR i.on_hand + g.delta < 0)
        ORDER BY g.sku
        LIMIT 1;
        IF FOUND THEN
            RETURN QUERY SELECT CASE WHEN refused.available IS NULL THEN 'unknown' ELSE 'short' END,
                refused.sku, refused.requested, refused.available, NULL::bigint, NULL::text,
                NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;

    IF bounded AND cardinality(customers) > 0 THEN
        -- What each customer holds (a row only while something is held).
        FOR slot IN 1 .. cardinality(customers) LOOP
            SELECT coalesce(sum(h.orders), 0)::bigint, coalesce(sum(h.units), 0)::bigint
            INTO holds_orders, holds_units
            FROM store_unpaid_holds AS h
            WHERE h.tenant_id = p_tenant AND h.customer_id = customers[slot];
            held_orders[slot] := holds_orders;
            held_units[slot] := holds_units;
        END LOOP;
        -- Then the append's new orders, one by one, against the bounds.
        FOREACH o IN ARRAY p_orders LOOP
            CONTINUE WHEN o.status <> 'placed';
            slot := array_position(customers, o.customer_id);
            IF held_orders[slot] + 1 > p_unpaid_orders THEN
                RETURN QUERY SELECT 'unpaid'::text, 'orders'::text, p_unpaid_orders,
                    held_orders[slot], NULL::bigint, NULL::text, NULL::text, NULL::text;
                RETURN;
            ELSIF held_units[slot] + o.units > p_unpaid_units THEN
                RETURN QUERY SELECT 'unpaid'::text, 'units'::text, p_unpaid_units,
                    held_units[slot], NULL::bigint, NULL::text, NULL::text, NULL::text;
                RETURN;
            END IF;
            held_orders[slot] := held_orders[slot] + 1;
            held_units[slot] := held_units[slot] + o.units;
        END LOOP;
    END IF;

    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT p_aggregate_type, p_aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, p_tenant, e.idempotency_key
    FROM unnest(p_events) AS e;

    PERFORM project_read_model(p_tenant, p_products, p_stock, p_orders, p_updates, p_items);

    RETURN QUERY SELECT 'appended', NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::text, NULL::text, NULL::text;
END;
$$;


DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_to_stream(text, text, text, bigint, new_event[], '
        'stock_guard_row[], catalogue_price[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[], bigint, bigint) SET search_path = %s, pg_temp',
        quote_ident(current_schema()));
END;
$$;
