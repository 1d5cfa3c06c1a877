-- Settling a checkout: a key abandoned without an order (docs/API.md,
-- "Settling a checkout").
--
-- The abandonment is CheckoutAbandoned, the first and only event of the
-- very Order stream the key's order would have had, with the key recorded
-- (events_one_stream_per_key): the events' primary key and that index let
-- one first event in, so an abandon and any number of checkouts with the
-- key have exactly one winner.
--
-- 1. store_checkout_abandonments: the read side of CheckoutAbandoned, one
--    row per abandoned key (an abandoned key is not an order: no
--    store_orders row). Who abandoned it: the customer, or NULL for staff.
-- 2. project_read_model and append_to_stream take the abandonments as one
--    more array: new overloads, with the whole body (the write path calls
--    no function more than before). The previous signatures stay, as thin
--    wrappers of the new ones, so that replicas of the previous release
--    keep working during a rolling deploy (they go in the next release).
-- 3. abandon_checkout: an abandon in one round trip. A stream that has
--    events is answered with them ('moved': placed or already abandoned,
--    nothing is written, no bound applies); else, for a customer, under a
--    per-(tenant, customer) transaction lock so that concurrent abandons
--    are counted exactly, the bound on recent abandonments ('limited':
--    requested = the bound, available = seconds until one more is allowed);
--    then append_to_stream.

CREATE TABLE store_checkout_abandonments (
    tenant_id       text        NOT NULL,
    idempotency_key text        NOT NULL,
    -- The id the order would have had (UUIDv5 of tenant and key).
    order_id        uuid        NOT NULL,
    -- The customer who abandoned it; NULL when staff did.
    customer_id     text,
    abandoned_at    timestamptz NOT NULL,
    CONSTRAINT store_checkout_abandonments_pkey PRIMARY KEY (tenant_id, idempotency_key)
);

-- A customer's recent abandonments, for the bound.
CREATE INDEX store_checkout_abandonments_by_customer
    ON store_checkout_abandonments (tenant_id, customer_id, abandoned_at)
    WHERE customer_id IS NOT NULL;

CREATE TYPE read_model_abandonment AS (
    order_id uuid, idempotency_key text, customer_id text, abandoned_at timestamptz);

-- As migration 8's, and the abandonments. Unpinned, like it: the rebuild
-- calls it with a search_path that leads to its shadow tables.
CREATE FUNCTION project_read_model(
    p_tenant text,
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[],
    abandonments read_model_abandonment[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint;
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
            currency, total, note, placed_at, updated_at, last_event_sequence)
        SELECT o.id, p_tenant, o.order_number, o.customer_id, o.idempotency_key, o.status,
               o.currency, o.total, o.note, o.placed_at, o.updated_at, o.last_event_sequence
        FROM unnest(orders) AS o;
    END IF;

    IF cardinality(updates) > 0 THEN
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

    IF cardinality(abandonments) > 0 THEN
        INSERT INTO store_checkout_abandonments (
            tenant_id, idempotency_key, order_id, customer_id, abandoned_at)
        SELECT p_tenant, a.idempotency_key, a.order_id, a.customer_id, a.abandoned_at
        FROM unnest(abandonments) AS a;
    END IF;
END;
$$;

-- The previous signature, for replicas of the previous release.
CREATE OR REPLACE FUNCTION project_read_model(
    p_tenant text,
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM project_read_model(p_tenant, products, stock, orders, updates, items,
                               '{}'::read_model_abandonment[]);
END;
$$;

-- As migration 8's, with the abandonments passed on to the projection.
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
    p_abandonments read_model_abandonment[])
RETURNS TABLE (outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    refused record;
BEGIN
    RETURN QUERY
    SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, n.sequence, n.event_type,
           n.event_version, n.payload
    FROM stream_events_after(p_tenant, p_aggregate_type, p_aggregate_id, p_expected) AS n;
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

        RETURN QUERY
        SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, n.sequence, n.event_type,
               n.event_version, n.payload
        FROM stream_events_after(p_tenant, p_aggregate_type, p_aggregate_id, p_expected) AS n;
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

    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT p_aggregate_type, p_aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, p_tenant, e.idempotency_key
    FROM unnest(p_events) AS e;

    PERFORM project_read_model(p_tenant, p_products, p_stock, p_orders, p_updates, p_items,
                               p_abandonments);

    RETURN QUERY SELECT 'appended', NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::text, NULL::text, NULL::text;
END;
$$;

-- The previous signature, for replicas of the previous release.
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
    p_items read_model_order_item[])
RETURNS TABLE (outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    SELECT * FROM append_to_stream(
        p_tenant, p_aggregate_type, p_aggregate_id, p_expected, p_events, p_guard, p_prices,
        p_products, p_stock, p_orders, p_updates, p_items, '{}'::read_model_abandonment[]);
END;
$$;

CREATE FUNCTION abandon_checkout(
    p_tenant text,
    p_aggregate_id text,
    p_events new_event[],
    p_abandonments read_model_abandonment[],
    p_customer text,
    p_at timestamptz,
    p_most bigint,
    p_window interval)
RETURNS TABLE (outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    recent bigint;
    oldest timestamptz;
BEGIN
    RETURN QUERY
    SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, n.sequence, n.event_type,
           n.event_version, n.payload
    FROM stream_events_after(p_tenant, 'Order', p_aggregate_id, 0) AS n;
    IF FOUND THEN
        RETURN;
    END IF;

    IF p_customer IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('store-orders abandon ' || p_tenant || ' ' || p_customer, 0));
        SELECT count(*), min(a.abandoned_at)
        INTO recent, oldest
        FROM store_checkout_abandonments AS a
        WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer
          AND a.abandoned_at > p_at - p_window;
        IF recent >= p_most THEN
            RETURN QUERY SELECT 'limited', NULL::text, p_most,
                greatest(1, ceil(extract(epoch FROM oldest + p_window - p_at)))::bigint,
                NULL::bigint, NULL::text, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    SELECT * FROM append_to_stream(
        p_tenant, 'Order', p_aggregate_id, 0, p_events, '{}', '{}', '{}', '{}', '{}', '{}',
        '{}', p_abandonments);
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
        'read_model_order_item[], read_model_abandonment[]) SET search_path = %s, pg_temp',
        target);
    -- CREATE OR REPLACE dropped the previous signature's pin: set it again.
    EXECUTE format(
        'ALTER FUNCTION append_to_stream(text, text, text, bigint, new_event[], '
        'stock_guard_row[], catalogue_price[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[]) SET search_path = %s, pg_temp', target);
    EXECUTE format(
        'ALTER FUNCTION abandon_checkout(text, text, new_event[], read_model_abandonment[], '
        'text, timestamptz, bigint, interval) SET search_path = %s, pg_temp', target);
END;
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'store_orders_app') THEN
        GRANT SELECT, INSERT, UPDATE ON store_checkout_abandonments TO store_orders_app;
    ELSE
        RAISE NOTICE 'role store_orders_app does not exist: create it (NOLOGIN) and grant it SELECT, INSERT, UPDATE ON store_checkout_abandonments';
    END IF;
END;
$$;
