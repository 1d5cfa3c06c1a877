-- append_batch (migration 15) checked each append's new orders against
-- the bounds on unpaid orders with two calls of the SQL function
-- unpaid_orders_placed per append: a query each (the function's pinned
-- search_path keeps PostgreSQL from inlining it), about a quarter of a
-- millisecond of PostgreSQL CPU per order in the group-commit bench. Here
-- the same check walks the append's order rows in PL/pgSQL expressions,
-- no query. Same signature, same answers; CREATE OR REPLACE keeps the
-- function's grants and its distribution on a cluster, and drops its
-- pinned search_path, set again at the end.

CREATE OR REPLACE FUNCTION append_batch(
    p_tenant text,
    p_appends batched_append[],
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
RETURNS TABLE (append_no int, outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    a batched_append;
    n int := 0;
    -- Where the previous append's part of each array ended.
    events_to int := 0;
    guard_to int := 0;
    prices_to int := 0;
    products_to int := 0;
    stock_to int := 0;
    orders_to int := 0;
    updates_to int := 0;
    items_to int := 0;
    events_from int;
    guard_from int;
    -- The batch's inventory rows, locked, and their stock as the batch goes.
    skus text[];
    on_hand bigint[];
    g stock_guard_row;
    slot int;
    refused record;
    short_sku text;
    short_requested bigint;
    short_available bigint;
    unknown_sku text;
    streams text[] := '{}';
    accepted int[] := '{}';
    new_events new_event[] := '{}';
    new_products read_model_product[] := '{}';
    new_stock read_model_stock_change[] := '{}';
    new_orders read_model_order[] := '{}';
    new_updates read_model_order_update[] := '{}';
    new_items read_model_order_item[] := '{}';
    stored bigint;
    -- The customers whose new orders the batch places, locked, and what
    -- they hold as the batch goes (same positions).
    bounded boolean := (p_unpaid_orders IS NOT NULL OR p_unpaid_units IS NOT NULL)
                       AND cardinality(p_orders) > 0;
    customers text[] := '{}';
    held_orders bigint[] := '{}';
    held_units bigint[] := '{}';
    order_no int;
    try_orders bigint[];
    try_units bigint[];
    over text;
    over_most bigint;
    over_held bigint;
BEGIN
    SELECT array_agg(locked.sku), array_agg(locked.on_hand)
    INTO skus, on_hand
    FROM (
        SELECT i.sku, i.on_hand
        FROM inventory AS i
        WHERE i.tenant_id = p_tenant
          AND i.sku IN (SELECT guarded.sku FROM unnest(p_guard) AS guarded)
        ORDER BY i.sku
        FOR UPDATE OF i
    ) AS locked;
    skus := coalesce(skus, '{}');
    on_hand := coalesce(on_hand, '{}');

    -- Then every customer the batch places an order for, in customer order
    -- (after the stock rows, as a lone append takes them), and what each
    -- holds. The appends' streams are read after these locks: a duplicate
    -- committed meanwhile is answered 'moved', never refused by a bound.
    IF bounded THEN
        SELECT coalesce(array_agg(c.customer_id ORDER BY c.customer_id), '{}')
        INTO customers
        FROM (SELECT DISTINCT o.customer_id
              FROM unnest(p_orders) AS o
              WHERE o.status = 'placed') AS c;
        FOR slot IN 1 .. cardinality(customers) LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended(
                'store-orders unpaid ' || p_tenant || ' ' || customers[slot], 0));
        END LOOP;
        SELECT coalesce(array_agg(coalesce(h.orders, 0) ORDER BY c.n), '{}'),
               coalesce(array_agg(coalesce(h.units, 0) ORDER BY c.n), '{}')
        INTO held_orders, held_units
        FROM unnest(customers) WITH ORDINALITY AS c (customer_id, n)
        LEFT JOIN store_unpaid_holds AS h
               ON h.tenant_id = p_tenant AND h.customer_id = c.customer_id;
    END IF;

    FOREACH a IN ARRAY p_appends LOOP
        n := n + 1;
        events_from := events_to + 1;
        guard_from := guard_to + 1;
        events_to := a.events_end;
        guard_to := a.guard_end;

        -- Moved on: by an earlier append of this batch, or before it.
        IF a.aggregate_type || '/' || a.aggregate_id = ANY (streams) THEN
            RETURN QUERY
            SELECT n, 'moved'::text, NULL::text, NULL::bigint, NULL::bigint, e.sequence,
                   e.event_type, e.event_version, e.payload::text
            FROM unnest(new_events) AS e
            WHERE e.aggregate_type = a.aggregate_type AND e.aggregate_id = a.aggregate_id
              AND e.sequence > a.expected
            ORDER BY e.sequence;
        ELSE
            RETURN QUERY
            SELECT n, 'moved'::text, NULL::text, NULL::bigint, NULL::bigint, e.sequence,
                   e.event_type, e.event_version, e.payload::text
            FROM events AS e
            WHERE e.tenant_id = p_tenant AND e.aggregate_type = a.aggregate_type
              AND e.aggregate_id = a.aggregate_id AND e.sequence > a.expected
            ORDER BY e.sequence;
        END IF;
        IF FOUND THEN
            prices_to := a.prices_end; products_to := a.products_end;
            stock_to := a.stock_end; orders_to := a.orders_end;
            updates_to := a.updates_end; items_to := a.items_end;
            CONTINUE;
        END IF;

        IF a.prices_end > prices_to THEN
            SELECT c.sku AS sku, i.sku IS NULL AS unknown
            INTO refused
            FROM unnest(p_prices[prices_to + 1:a.prices_end]) AS c
            LEFT JOIN inventory AS i ON i.tenant_id = p_tenant AND i.sku = c.sku
            WHERE i.sku IS NULL
               OR i.name <> c.name OR i.unit_price <> c.unit_price OR i.currency <> c.currency
            ORDER BY c.sku
            LIMIT 1;
            IF FOUND THEN
                RETURN QUERY SELECT n, CASE WHEN refused.unknown THEN 'unknown' ELSE 'repriced' END,
                    refused.sku, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
                    NULL::text, NULL::text;
                prices_to := a.prices_end; products_to := a.products_end;
                stock_to := a.stock_end; orders_to := a.orders_end;
                updates_to := a.updates_end; items_to := a.items_end;
                CONTINUE;
            END IF;
        END IF;

        -- The stock left after the batch's earlier appends: the first SKU in
        -- SKU order that cannot serve this append, as a lone append says.
        unknown_sku := NULL;
        short_sku := NULL;
        FOR g IN SELECT * FROM unnest(p_guard[guard_from:guard_to]) LOOP
            CONTINUE WHEN g.delta IS NULL;
            slot := array_position(skus, g.sku);
            IF slot IS NULL THEN
                IF unknown_sku IS NULL OR g.sku < unknown_sku THEN
                    unknown_sku := g.sku;
                END IF;
            ELSIF on_hand[slot] + g.delta < 0 AND (short_sku IS NULL OR g.sku < short_sku) THEN
                short_sku := g.sku;
                short_requested := -g.delta;
                short_available := on_hand[slot];
            END IF;
        END LOOP;
        -- The bounds on unpaid orders, with the batch's earlier orders:
        -- what the customers would hold with this append's new orders.
        over := NULL;
        IF bounded AND a.orders_end > orders_to THEN
            try_orders := held_orders;
            try_units := held_units;
            FOR order_no IN orders_to + 1 .. a.orders_end LOOP
                CONTINUE WHEN (p_orders[order_no]).status <> 'placed';
                slot := array_position(customers, (p_orders[order_no]).customer_id);
                try_orders[slot] := try_orders[slot] + 1;
                try_units[slot] := try_units[slot] + (p_orders[order_no]).units;
                IF try_orders[slot] > p_unpaid_orders THEN
                    over := 'orders';
                    over_most := p_unpaid_orders;
                    over_held := held_orders[slot];
                    EXIT;
                ELSIF try_units[slot] > p_unpaid_units THEN
                    over := 'units';
                    over_most := p_unpaid_units;
                    over_held := held_units[slot];
                    EXIT;
                END IF;
            END LOOP;
        END IF;
        IF unknown_sku IS NOT NULL AND (short_sku IS NULL OR unknown_sku < short_sku) THEN
            RETURN QUERY SELECT n, 'unknown'::text, unknown_sku, NULL::bigint, NULL::bigint,
                NULL::bigint, NULL::text, NULL::text, NULL::text;
        ELSIF short_sku IS NOT NULL THEN
            RETURN QUERY SELECT n, 'short'::text, short_sku, short_requested, short_available,
                NULL::bigint, NULL::text, NULL::text, NULL::text;
        ELSIF over IS NOT NULL THEN
            RETURN QUERY SELECT n, 'unpaid'::text, over, over_most, over_held,
                NULL::bigint, NULL::text, NULL::text, NULL::text;
        ELSE
            IF bounded AND a.orders_end > orders_to THEN
                held_orders := try_orders;
                held_units := try_units;
            END IF;
            FOR g IN SELECT * FROM unnest(p_guard[guard_from:guard_to]) LOOP
                CONTINUE WHEN g.delta IS NULL;
                slot := array_position(skus, g.sku);
                on_hand[slot] := on_hand[slot] + g.delta;
            END LOOP;
            accepted := accepted || n;
            streams := streams || (a.aggregate_type || '/' || a.aggregate_id);
            new_events := new_events || p_events[events_from:events_to];
            new_products := new_products || p_products[products_to + 1:a.products_end];
            new_stock := new_stock || p_stock[stock_to + 1:a.stock_end];
            new_orders := new_orders || p_orders[orders_to + 1:a.orders_end];
            new_updates := new_updates || p_updates[updates_to + 1:a.updates_end];
            new_items := new_items || p_items[items_to + 1:a.items_end];
        END IF;
        prices_to := a.prices_end; products_to := a.products_end;
        stock_to := a.stock_end; orders_to := a.orders_end;
        updates_to := a.updates_end; items_to := a.items_end;
    END LOOP;

    IF cardinality(accepted) = 0 THEN
        RETURN;
    END IF;

    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, p_tenant, e.idempotency_key
    FROM unnest(new_events) AS e
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS stored = ROW_COUNT;
    IF stored <> cardinality(new_events) THEN
        RAISE EXCEPTION 'another connection appended to a stream of this batch'
            USING ERRCODE = 'SB001';
    END IF;

    -- One change per SKU: the projection updates each inventory row once.
    PERFORM project_read_model(
        p_tenant, new_products,
        ARRAY(SELECT ROW(p_tenant, c.sku, sum(c.delta)::bigint, max(c.changed_at))
                     ::read_model_stock_change
              FROM unnest(new_stock) AS c
              GROUP BY c.sku
              ORDER BY c.sku),
        new_orders, new_updates, new_items);

    RETURN QUERY SELECT accepted_no, 'appended'::text, NULL::text, NULL::bigint,
        NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text
    FROM unnest(accepted) AS accepted_no;
END;
$$;


DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_batch(text, batched_append[], new_event[], stock_guard_row[], '
        'catalogue_price[], read_model_product[], read_model_stock_change[], '
        'read_model_order[], read_model_order_update[], read_model_order_item[], bigint, bigint) '
        'SET search_path = %s, pg_temp', quote_ident(current_schema()));
END;
$$;
