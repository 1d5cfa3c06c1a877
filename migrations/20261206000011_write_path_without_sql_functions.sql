-- The write path without a SQL-language function called with parameters.
--
-- A distributed PostgreSQL (Citus) cannot plan "parameterized queries for
-- SQL functions referencing distributed tables", and stream_events_after
-- (migration 5) was one: every append and every abandon called it with
-- their own arguments, so every write failed on a cluster. Here the
-- stream lookup is written out where it is used (append_to_stream,
-- abandon_checkout: the same statement the SQL function inlined to on a
-- single node, so nothing changes there but one function call less), and
-- stream_events_after itself, kept for any other caller, becomes PL/pgSQL.
-- The service reads a stream with a plain query (load_stream.sql).
--
-- Same signatures; CREATE OR REPLACE drops the functions' pinned
-- search_path, set again at the end.

CREATE OR REPLACE FUNCTION stream_events_after(
    p_tenant text, p_aggregate_type text, p_aggregate_id text, after bigint)
RETURNS TABLE (sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT e.sequence, e.event_type, e.event_version, e.payload::text
    FROM events AS e
    WHERE e.aggregate_type = p_aggregate_type AND e.aggregate_id = p_aggregate_id
      AND e.sequence > after AND e.tenant_id = p_tenant
    ORDER BY e.sequence;
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
    p_items read_model_order_item[])
RETURNS TABLE (outcome text, sku text, requested bigint, available bigint,
               sequence bigint, event_type text, event_version text, payload text)
LANGUAGE plpgsql AS $$
DECLARE
    refused record;
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

CREATE OR REPLACE FUNCTION abandon_checkout(
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
    SELECT 'moved', NULL::text, NULL::bigint, NULL::bigint, e.sequence, e.event_type,
           e.event_version, e.payload::text
    FROM events AS e
    WHERE e.tenant_id = p_tenant AND e.aggregate_type = 'Order'
      AND e.aggregate_id = p_aggregate_id
    ORDER BY e.sequence;
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
DECLARE
    target text := quote_ident(current_schema());
BEGIN
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
