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
-- 2. project_read_model gains an overload that also takes the
--    abandonments (the rebuild calls it; it runs the previous one, then
--    inserts them). append_to_stream, the checkout's path, is unchanged:
--    a checkout never carries an abandonment, and its cost stays as it was.
-- 3. abandon_checkout: an abandon in one round trip. A stream that has
--    events is answered with them ('moved': placed or already abandoned,
--    nothing is written, no bound applies); else, for a customer, under a
--    per-(tenant, customer) transaction lock so that concurrent abandons
--    are counted exactly, the bound on recent abandonments ('limited':
--    requested = the bound, available = seconds until one more is allowed);
--    then the event is inserted (a concurrent first event of the stream
--    fails it on events_pkey or events_one_stream_per_key) and projected.

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

-- Unpinned, like the one it extends: the rebuild calls it with a
-- search_path that leads to its shadow tables.
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
BEGIN
    PERFORM project_read_model(p_tenant, products, stock, orders, updates, items);

    IF cardinality(abandonments) > 0 THEN
        INSERT INTO store_checkout_abandonments (
            tenant_id, idempotency_key, order_id, customer_id, abandoned_at)
        SELECT p_tenant, a.idempotency_key, a.order_id, a.customer_id, a.abandoned_at
        FROM unnest(abandonments) AS a;
    END IF;
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

    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT 'Order', p_aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, p_tenant, e.idempotency_key
    FROM unnest(p_events) AS e;

    PERFORM project_read_model(p_tenant, '{}', '{}', '{}', '{}', '{}', p_abandonments);

    RETURN QUERY SELECT 'appended', NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::text, NULL::text, NULL::text;
END;
$$;

DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION abandon_checkout(text, text, new_event[], read_model_abandonment[], '
        'text, timestamptz, bigint, interval) SET search_path = %s, pg_temp',
        quote_ident(current_schema()));
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
