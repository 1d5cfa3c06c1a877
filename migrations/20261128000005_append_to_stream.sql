-- The write path in one round trip, whatever the stream's state.
--
-- append_to_stream replaces append_events (kept, unused, until the next
-- release, so that a replica still running the previous version keeps
-- working during a rolling deploy). The caller states what it decided on:
--   * the stream's last sequence it knew (0 for a stream it assumes new: a
--     checkout or a stock adjustment, whose stream id comes from the key);
--   * the catalogue names and prices it priced order lines with (from a
--     per-process cache);
-- and the function answers with one of:
--   'moved'     the stream has events after p_expected: they are returned
--               (sequence, type, version, payload), nothing is written; the
--               caller folds them and decides again. A retried checkout
--               comes back this way with its order: one round trip, no lock.
--   'unknown'   a priced SKU has no inventory row (sku);
--   'repriced'  a priced line's name or price is no longer the catalogue's
--               (sku): the caller refreshes its prices and decides again;
--               an order is never placed at a stale price;
--   'short'     a stock change would take on_hand below zero (sku,
--               requested, available), and the stream is as the caller
--               knew it: a real refusal;
--   'appended'  the events are stored and projected.
-- Order of work: look at the stream (no lock); lock the inventory rows in
-- SKU order; look at the stream again (a duplicate that waited for the
-- winner's locks sees the winner's events here: READ COMMITTED gives each
-- statement a fresh snapshot); check prices and stock on the locked rows;
-- insert the events; project them. A concurrent append that took no common
-- lock still fails on the events' primary key or (tenant, kind, key) index,
-- and the caller loads and decides again.
--
-- Every statement filters by p_tenant (its own argument, so that a
-- distributed PostgreSQL can route the call by it).

CREATE TYPE catalogue_price AS (sku text, name text, unit_price bigint, currency text);

-- The events of a stream after `after`, in order: what a caller that knew
-- the stream up to `after` has not seen. (SQL, so the planner inlines it.)
CREATE FUNCTION stream_events_after(
    p_tenant text, p_aggregate_type text, p_aggregate_id text, after bigint)
RETURNS TABLE (sequence bigint, event_type text, event_version text, payload text)
LANGUAGE sql STABLE AS $$
    SELECT e.sequence, e.event_type, e.event_version, e.payload::text
    FROM events AS e
    WHERE e.aggregate_type = p_aggregate_type AND e.aggregate_id = p_aggregate_id
      AND e.sequence > after AND e.tenant_id = p_tenant
    ORDER BY e.sequence
$$;

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
    p_items read_model_order_item[])
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

    PERFORM project_read_model(p_products, p_stock, p_orders, p_updates, p_items);

    RETURN QUERY SELECT 'appended', NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::text, NULL::text, NULL::text;
END;
$$;
