-- Bounded stock holds (issue 24): a customer's unpaid orders may not hold
-- more than the service's bounds (open orders, units), so that one
-- customer cannot reserve a tenant's whole stock by new_hold orders and
-- never paying.
--
-- store_unpaid_holds keeps, per customer, the open unpaid ('placed')
-- orders and the units their lines hold; project_read_model keeps it in
-- the same transaction as the events (a rebuild replays it like any other
-- read-model table). A row exists only while the customer holds something.
-- store_orders (and its composite, read_model_order) gains the units of
-- each order, so that an order leaving 'placed' releases its units
-- without reading its lines.
--
-- append_to_stream and append_batch take the bounds (NULL: none) and
-- check every order an append places against its customer's holds, read
-- under a per-(tenant, customer) transaction lock taken after the stock
-- rows (the order every writer takes them in). A duplicate that waited
-- for that lock is answered as a replay: the stream is read again after
-- the locks, so a replay is never refused by a bound. The refusal is the
-- outcome 'unpaid' with sku = the bound's name ('orders' or 'units'),
-- requested = its value and available = what the customer holds now.

ALTER TABLE store_orders
    ADD COLUMN units bigint NOT NULL DEFAULT 0
        CONSTRAINT store_orders_units_not_negative CHECK (units >= 0);
UPDATE store_orders AS o
SET units = coalesce((SELECT sum(i.quantity)
                      FROM store_order_items AS i
                      WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id), 0);
ALTER TABLE store_orders ALTER COLUMN units DROP DEFAULT;

-- The fold (crate order-store, module projection) computes each new
-- order's units from its lines, as it does every other column.
ALTER TYPE read_model_order ADD ATTRIBUTE units bigint;

CREATE TABLE store_unpaid_holds (
    tenant_id   text   NOT NULL,
    customer_id text   NOT NULL,
    orders      bigint NOT NULL CONSTRAINT store_unpaid_holds_orders_not_negative CHECK (orders >= 0),
    units       bigint NOT NULL CONSTRAINT store_unpaid_holds_units_not_negative CHECK (units >= 0),
    PRIMARY KEY (tenant_id, customer_id)
);

INSERT INTO store_unpaid_holds (tenant_id, customer_id, orders, units)
SELECT o.tenant_id, o.customer_id, count(*), sum(o.units)
FROM store_orders AS o
WHERE o.status = 'placed'
GROUP BY o.tenant_id, o.customer_id;

-- The service's application role (migration 12) keeps them.
DO $$
DECLARE
    app text := CASE
        WHEN octet_length(current_database()) <= 55 THEN current_database() || '_service'
        ELSE left(current_database(), 46) || '_' || left(md5(current_database()), 8) || '_service'
    END;
BEGIN
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON store_unpaid_holds TO %I', app);
END;
$$;

-- As in migration 8, plus the units of each new order and the holds.
CREATE OR REPLACE FUNCTION project_read_model(
    p_tenant text,
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[])
RETURNS void
LANGUAGE plpgsql AS $$
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

-- What an append's new orders hold, per customer: the part of a checkout
-- the bounds are checked against.
CREATE FUNCTION unpaid_orders_placed(p_orders read_model_order[])
RETURNS TABLE (customer_id text, orders bigint, units bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT o.customer_id, count(*), sum(o.units)::bigint
    FROM unnest(p_orders) AS o
    WHERE o.status = 'placed'
    GROUP BY o.customer_id
    ORDER BY o.customer_id
$$;


-- As in migration 11, plus the bounds.
DROP FUNCTION append_to_stream(text, text, text, bigint, new_event[], stock_guard_row[],
    catalogue_price[], read_model_product[], read_model_stock_change[], read_model_order[],
    read_model_order_update[], read_model_order_item[]);

CREATE FUNCTION append_to_stream(
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
    new_hold record;
    held record;
    locked boolean := false;
    bounded boolean := (p_unpaid_orders IS NOT NULL OR p_unpaid_units IS NOT NULL)
                       AND cardinality(p_orders) > 0;
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
        FOR new_hold IN SELECT * FROM unpaid_orders_placed(p_orders) LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended(
                'store-orders unpaid ' || p_tenant || ' ' || new_hold.customer_id, 0));
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

    IF bounded THEN
        FOR new_hold IN SELECT * FROM unpaid_orders_placed(p_orders) LOOP
            SELECT coalesce(sum(h.orders), 0)::bigint AS orders, coalesce(sum(h.units), 0)::bigint AS units
            INTO held
            FROM store_unpaid_holds AS h
            WHERE h.tenant_id = p_tenant AND h.customer_id = new_hold.customer_id;
            IF held.orders + new_hold.orders > p_unpaid_orders THEN
                RETURN QUERY SELECT 'unpaid'::text, 'orders'::text, p_unpaid_orders, held.orders,
                    NULL::bigint, NULL::text, NULL::text, NULL::text;
                RETURN;
            ELSIF held.units + new_hold.units > p_unpaid_units THEN
                RETURN QUERY SELECT 'unpaid'::text, 'units'::text, p_unpaid_units, held.units,
                    NULL::bigint, NULL::text, NULL::text, NULL::text;
                RETURN;
            END IF;
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

-- As in migration 14, plus the bounds.
DROP FUNCTION append_batch(text, batched_append[], new_event[], stock_guard_row[],
    catalogue_price[], read_model_product[], read_model_stock_change[], read_model_order[],
    read_model_order_update[], read_model_order_item[]);

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
    new_hold record;
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
        -- The bounds on unpaid orders, with the batch's earlier orders.
        over := NULL;
        IF bounded AND a.orders_end > orders_to THEN
            FOR new_hold IN
                SELECT * FROM unpaid_orders_placed(p_orders[orders_to + 1:a.orders_end])
            LOOP
                slot := array_position(customers, new_hold.customer_id);
                IF held_orders[slot] + new_hold.orders > p_unpaid_orders THEN
                    over := 'orders';
                    over_most := p_unpaid_orders;
                    over_held := held_orders[slot];
                    EXIT;
                ELSIF held_units[slot] + new_hold.units > p_unpaid_units THEN
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
                FOR new_hold IN
                    SELECT * FROM unpaid_orders_placed(p_orders[orders_to + 1:a.orders_end])
                LOOP
                    slot := array_position(customers, new_hold.customer_id);
                    held_orders[slot] := held_orders[slot] + new_hold.orders;
                    held_units[slot] := held_units[slot] + new_hold.units;
                END LOOP;
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
    EXECUTE format(
        'ALTER FUNCTION unpaid_orders_placed(read_model_order[]) '
        'SET search_path = %s, pg_temp', target);
END;
$$;
