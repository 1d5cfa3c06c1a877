-- The write path read the inventory with joins against the appends' arrays
-- (`JOIN unnest(p_guard)`, `LEFT JOIN inventory ON ... = c.sku`), and the
-- planner may answer those by reading all of the tenant's inventory rows
-- and hashing them: without statistics (autovacuum off, a fresh database)
-- it takes a tenant's 1,000 rows for two, and with them its costs still
-- prefer a scan of a small table, the cached plan flipping from one session
-- to the next. Measured with pg_stat_statements in `order-bench external`
-- (1,000 SKUs): the price check inside append_batch, one query per append,
-- averaged 0.31 ms, more than a third of the batch; the locking query 0.58
-- ms per batch; the projection's stock update 0.39-0.74 ms per call, 0.16 ms
-- by key.
--
-- Here:
-- - the batch and the lone append lock their stock and priced rows with a
--   nested loop over their SKUs in SKU order (LATERAL ... OFFSET 0: one
--   index probe each, whatever the statistics; the same rows as before for
--   a checkout) and read names, prices and stock in that query: the price
--   and stock checks are PL/pgSQL expressions over those arrays;
-- - the projection (project_read_model) is left only plans that probe by
--   key (its SET clauses: its statements join a few rows of arrays to
--   tables by key);
-- - append_batch no longer copies each accepted append's rows onto growing
--   arrays (six concatenations per append, each copying what the batch had
--   gathered): it notes which appends it accepts and, when it accepted all
--   of them (the usual case), stores its arguments as they came; otherwise
--   it gathers the accepted appends' rows once, at the end.
--
-- Same signatures, same answers; CREATE OR REPLACE keeps the functions'
-- grants and their distribution on a cluster, and drops the append
-- functions' pinned search_path, set again at the end.

CREATE OR REPLACE FUNCTION project_read_model(
    p_tenant text,
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[])
RETURNS void
LANGUAGE plpgsql
-- Only probes by key (see above).
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    changed bigint;
    emptied text[];
BEGIN
    IF cardinality(products) > 0 THEN
        INSERT INTO inventory (tenant_id, sku, name, unit_price, currency, on_hand, updated_at)
        SELECT p_tenant, p.sku, p.name, p.unit_price, p.currency, 0, p.defined_at
        FROM unnest(products) AS p
        ON CONFLICT (tenant_id, sku) DO UPDATE
        SET name       = excluded.name,
            unit_price = excluded.unit_price,
            currency   = excluded.currency,
            updated_at = GREATEST(inventory.updated_at, excluded.updated_at);
    END IF;

    IF cardinality(stock) > 0 THEN
        UPDATE inventory AS i
        SET on_hand    = i.on_hand + c.delta,
            updated_at = GREATEST(i.updated_at, c.changed_at)
        FROM unnest(stock) AS c
        WHERE i.tenant_id = p_tenant AND i.sku = c.sku;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed <> cardinality(stock) THEN
            RAISE EXCEPTION 'read model out of step: a stock change has no inventory row'
                USING ERRCODE = 'RM001';
        END IF;
    END IF;

    IF cardinality(orders) > 0 THEN
        INSERT INTO store_orders (
            id, tenant_id, order_number, customer_id, idempotency_key, status,
            currency, total, note, placed_at, updated_at, last_event_sequence, units)
        SELECT o.id, p_tenant, o.order_number, o.customer_id, o.idempotency_key, o.status,
               o.currency, o.total, o.note, o.placed_at, o.updated_at, o.last_event_sequence,
               o.units
        FROM unnest(orders) AS o;

        INSERT INTO store_unpaid_holds AS h (tenant_id, customer_id, orders, units)
        SELECT p_tenant, o.customer_id, count(*), sum(o.units)
        FROM unnest(orders) AS o
        WHERE o.status = 'placed'
        GROUP BY o.customer_id
        ORDER BY o.customer_id
        ON CONFLICT (tenant_id, customer_id) DO UPDATE
        SET orders = h.orders + excluded.orders,
            units  = h.units + excluded.units;
    END IF;

    IF cardinality(updates) > 0 THEN
        -- Orders leaving 'placed' release what they held.
        WITH released AS (
            SELECT o.customer_id, count(*) AS orders, sum(o.units) AS units
            FROM store_orders AS o
            JOIN unnest(updates) AS u ON o.id = u.id
            WHERE o.tenant_id = p_tenant AND o.status = 'placed' AND u.status <> 'placed'
              AND o.last_event_sequence < u.sequence
            GROUP BY o.customer_id
        ), lowered AS (
            UPDATE store_unpaid_holds AS h
            SET orders = h.orders - r.orders,
                units  = h.units - r.units
            FROM released AS r
            WHERE h.tenant_id = p_tenant AND h.customer_id = r.customer_id
            RETURNING h.customer_id, h.orders
        )
        SELECT array_agg(l.customer_id) FILTER (WHERE l.orders = 0)
        INTO emptied
        FROM lowered AS l;
        IF emptied IS NOT NULL THEN
            DELETE FROM store_unpaid_holds AS h
            WHERE h.tenant_id = p_tenant AND h.customer_id = ANY (emptied) AND h.orders = 0;
        END IF;

        UPDATE store_orders AS o
        SET status              = u.status,
            updated_at          = u.updated_at,
            last_event_sequence = u.sequence
        FROM unnest(updates) AS u
        WHERE o.tenant_id = p_tenant AND o.id = u.id AND o.last_event_sequence < u.sequence;
    END IF;

    IF cardinality(items) > 0 THEN
        INSERT INTO store_order_items (
            tenant_id, order_id, line_no, sku, name, quantity, unit_price, line_total)
        SELECT p_tenant, i.order_id, i.line_no, i.sku, i.name, i.quantity, i.unit_price,
               i.line_total
        FROM unnest(items) AS i;
    END IF;
END;
$$;


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
    -- The append's stock and priced rows, locked, in SKU order, with what
    -- the checks compare (same positions).
    skus text[] := '{}';
    names text[];
    unit_prices bigint[];
    currencies text[];
    on_hand bigint[];
    priced catalogue_price;
    g stock_guard_row;
    refused_sku text;
    refused_unknown boolean;
    short_requested bigint;
    short_available bigint;
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

    IF cardinality(p_guard) > 0 OR cardinality(p_prices) > 0 THEN
        -- The same rows in the same order in every array: same positions.
        SELECT coalesce(array_agg(r.sku), '{}'), array_agg(r.name), array_agg(r.unit_price),
               array_agg(r.currency), array_agg(r.on_hand)
        INTO skus, names, unit_prices, currencies, on_hand
        FROM (SELECT w.sku FROM unnest(p_guard) AS w
              UNION
              SELECT w.sku FROM unnest(p_prices) AS w
              ORDER BY 1) AS wanted
        CROSS JOIN LATERAL (
            SELECT i.sku, i.name, i.unit_price, i.currency, i.on_hand
            FROM inventory AS i
            WHERE i.tenant_id = p_tenant AND i.sku = wanted.sku
            FOR UPDATE OF i
            OFFSET 0
        ) AS r;
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

    -- The first SKU in SKU order whose name or price the checkout was not
    -- decided on, or that the catalogue lacks.
    refused_sku := NULL;
    FOREACH priced IN ARRAY p_prices LOOP
        slot := array_position(skus, priced.sku);
        IF (slot IS NULL OR names[slot] <> priced.name OR unit_prices[slot] <> priced.unit_price
                OR currencies[slot] <> priced.currency)
           AND (refused_sku IS NULL OR priced.sku < refused_sku) THEN
            refused_sku := priced.sku;
            refused_unknown := slot IS NULL;
        END IF;
    END LOOP;
    IF refused_sku IS NOT NULL THEN
        RETURN QUERY SELECT CASE WHEN refused_unknown THEN 'unknown' ELSE 'repriced' END,
            refused_sku, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::text,
            NULL::text;
        RETURN;
    END IF;

    -- The first SKU in SKU order the stock cannot serve, or that has no
    -- stock row.
    FOREACH g IN ARRAY p_guard LOOP
        CONTINUE WHEN g.delta IS NULL;
        slot := array_position(skus, g.sku);
        IF (slot IS NULL OR on_hand[slot] + g.delta < 0)
           AND (refused_sku IS NULL OR g.sku < refused_sku) THEN
            refused_sku := g.sku;
            refused_unknown := slot IS NULL;
            short_requested := -g.delta;
            short_available := on_hand[slot];
        END IF;
    END LOOP;
    IF refused_sku IS NOT NULL THEN
        RETURN QUERY SELECT CASE WHEN refused_unknown THEN 'unknown' ELSE 'short' END,
            refused_sku, short_requested, short_available, NULL::bigint, NULL::text,
            NULL::text, NULL::text;
        RETURN;
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
    -- The batch's stock and priced rows, locked, in SKU order: what the
    -- price checks compare, and the stock as the batch goes (same
    -- positions).
    skus text[];
    names text[];
    unit_prices bigint[];
    currencies text[];
    on_hand bigint[];
    g stock_guard_row;
    priced catalogue_price;
    k int;
    slot int;
    refused_sku text;
    refused_unknown boolean;
    short_sku text;
    short_requested bigint;
    short_available bigint;
    unknown_sku text;
    -- The accepted appends: their numbers, streams and events (same
    -- positions). Their rows are gathered once, after the checks (all of
    -- the arguments when every append is accepted, as is usual).
    accepted int[] := '{}';
    streams text[] := '{}';
    streams_from int[] := '{}';
    streams_to int[] := '{}';
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
    -- Locked in SKU order (the nested loop follows `wanted`); the same
    -- rows in the same order in every array: same positions.
    SELECT coalesce(array_agg(r.sku), '{}'), array_agg(r.name), array_agg(r.unit_price),
           array_agg(r.currency), coalesce(array_agg(r.on_hand), '{}')
    INTO skus, names, unit_prices, currencies, on_hand
    FROM (SELECT w.sku FROM unnest(p_guard) AS w
          UNION
          SELECT w.sku FROM unnest(p_prices) AS w
          ORDER BY 1) AS wanted
    CROSS JOIN LATERAL (
        SELECT i.sku, i.name, i.unit_price, i.currency, i.on_hand
        FROM inventory AS i
        WHERE i.tenant_id = p_tenant AND i.sku = wanted.sku
        FOR UPDATE OF i
        OFFSET 0
    ) AS r;

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
        slot := array_position(streams, a.aggregate_type || '/' || a.aggregate_id);
        IF slot IS NOT NULL THEN
            RETURN QUERY
            SELECT n, 'moved'::text, NULL::text, NULL::bigint, NULL::bigint, e.sequence,
                   e.event_type, e.event_version, e.payload::text
            FROM unnest(p_events[streams_from[slot]:streams_to[slot]]) AS e
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

        -- The first SKU in SKU order whose name or price the append was not
        -- decided on, or that the catalogue lacks (the catalogue as it was
        -- before the batch: its product changes are projected at the end).
        refused_sku := NULL;
        FOR k IN prices_to + 1 .. a.prices_end LOOP
            priced := p_prices[k];
            slot := array_position(skus, priced.sku);
            IF (slot IS NULL OR names[slot] <> priced.name OR unit_prices[slot] <> priced.unit_price
                    OR currencies[slot] <> priced.currency)
               AND (refused_sku IS NULL OR priced.sku < refused_sku) THEN
                refused_sku := priced.sku;
                refused_unknown := slot IS NULL;
            END IF;
        END LOOP;
        IF refused_sku IS NOT NULL THEN
            RETURN QUERY SELECT n, CASE WHEN refused_unknown THEN 'unknown' ELSE 'repriced' END,
                refused_sku, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
                NULL::text, NULL::text;
            prices_to := a.prices_end; products_to := a.products_end;
            stock_to := a.stock_end; orders_to := a.orders_end;
            updates_to := a.updates_end; items_to := a.items_end;
            CONTINUE;
        END IF;

        -- The stock left after the batch's earlier appends: the first SKU in
        -- SKU order that cannot serve this append, as a lone append says.
        unknown_sku := NULL;
        short_sku := NULL;
        FOR k IN guard_from .. guard_to LOOP
            g := p_guard[k];
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
            FOR k IN guard_from .. guard_to LOOP
                g := p_guard[k];
                CONTINUE WHEN g.delta IS NULL;
                slot := array_position(skus, g.sku);
                on_hand[slot] := on_hand[slot] + g.delta;
            END LOOP;
            accepted := accepted || n;
            streams := streams || (a.aggregate_type || '/' || a.aggregate_id);
            streams_from := streams_from || events_from;
            streams_to := streams_to || events_to;
        END IF;
        prices_to := a.prices_end; products_to := a.products_end;
        stock_to := a.stock_end; orders_to := a.orders_end;
        updates_to := a.updates_end; items_to := a.items_end;
    END LOOP;

    IF cardinality(accepted) = 0 THEN
        RETURN;
    ELSIF cardinality(accepted) = n THEN
        new_events := p_events;
        new_products := p_products;
        new_stock := p_stock;
        new_orders := p_orders;
        new_updates := p_updates;
        new_items := p_items;
    ELSE
        n := 0;
        events_to := 0; products_to := 0; stock_to := 0;
        orders_to := 0; updates_to := 0; items_to := 0;
        FOREACH a IN ARRAY p_appends LOOP
            n := n + 1;
            IF n = ANY (accepted) THEN
                new_events := new_events || p_events[events_to + 1:a.events_end];
                new_products := new_products || p_products[products_to + 1:a.products_end];
                new_stock := new_stock || p_stock[stock_to + 1:a.stock_end];
                new_orders := new_orders || p_orders[orders_to + 1:a.orders_end];
                new_updates := new_updates || p_updates[updates_to + 1:a.updates_end];
                new_items := new_items || p_items[items_to + 1:a.items_end];
            END IF;
            events_to := a.events_end; products_to := a.products_end;
            stock_to := a.stock_end; orders_to := a.orders_end;
            updates_to := a.updates_end; items_to := a.items_end;
        END LOOP;
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
DECLARE
    target text := quote_ident(current_schema());
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_to_stream(text, text, text, bigint, new_event[], '
        'stock_guard_row[], catalogue_price[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[], bigint, bigint) SET search_path = %s, pg_temp', target);
    EXECUTE format(
        'ALTER FUNCTION append_batch(text, batched_append[], new_event[], stock_guard_row[], '
        'catalogue_price[], read_model_product[], read_model_stock_change[], '
        'read_model_order[], read_model_order_update[], read_model_order_item[], bigint, bigint) '
        'SET search_path = %s, pg_temp', target);
END;
$$;
