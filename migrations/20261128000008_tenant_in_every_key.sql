-- Every key carries the tenant: the shape a distributed PostgreSQL (Citus)
-- needs to place each tenant's rows, events included, on one node and keep
-- every unique check and join there (docs/SCALE-OUT.md).
--
-- 1. events: primary key (tenant_id, aggregate_type, aggregate_id,
--    sequence); position unique per tenant (it is unique anyway: an
--    identity).
-- 2. store_orders: primary key (tenant_id, id).
-- 3. store_order_items: gains tenant_id (filled from its order); primary key
--    (tenant_id, order_id, line_no); foreign key (tenant_id, order_id).
-- 4. project_read_model takes the tenant as its own argument, and every
--    statement it runs is that tenant's; append_to_stream (same signature,
--    so replicas of the previous release keep working) calls it. The
--    rebuild writes each tenant's changes with its own call. The previous
--    projection function and append_events (unused since migration 5) go:
--    a rebuild job must be of this release.

ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey
    PRIMARY KEY (tenant_id, aggregate_type, aggregate_id, sequence);
ALTER TABLE events DROP CONSTRAINT events_position_key;
ALTER TABLE events ADD CONSTRAINT events_position_key UNIQUE (tenant_id, position);

ALTER TABLE store_order_items DROP CONSTRAINT store_order_items_order_id_fkey;
ALTER TABLE store_orders DROP CONSTRAINT store_orders_pkey;
ALTER TABLE store_orders ADD CONSTRAINT store_orders_pkey PRIMARY KEY (tenant_id, id);

ALTER TABLE store_order_items ADD COLUMN tenant_id text;
UPDATE store_order_items AS i SET tenant_id = o.tenant_id
FROM store_orders AS o WHERE o.id = i.order_id;
ALTER TABLE store_order_items ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE store_order_items DROP CONSTRAINT store_order_items_pkey;
ALTER TABLE store_order_items ADD CONSTRAINT store_order_items_pkey
    PRIMARY KEY (tenant_id, order_id, line_no);
ALTER TABLE store_order_items ADD CONSTRAINT store_order_items_order_fkey
    FOREIGN KEY (tenant_id, order_id) REFERENCES store_orders (tenant_id, id) ON DELETE CASCADE;

DROP FUNCTION append_events(new_event[], stock_guard_row[], read_model_product[],
    read_model_stock_change[], read_model_order[], read_model_order_update[],
    read_model_order_item[]);
DROP FUNCTION project_read_model(read_model_product[], read_model_stock_change[],
    read_model_order[], read_model_order_update[], read_model_order_item[]);

-- One tenant's fold of events, applied to the read-model tables that
-- search_path resolves (the live ones, or a rebuild's shadow tables: see
-- migration 3). The tenant fields of the rows are not read: p_tenant is.
CREATE FUNCTION project_read_model(
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

    PERFORM project_read_model(p_tenant, p_products, p_stock, p_orders, p_updates, p_items);

    RETURN QUERY SELECT 'appended', NULL::text, NULL::bigint, NULL::bigint, NULL::bigint,
        NULL::text, NULL::text, NULL::text;
END;
$$;

-- CREATE OR REPLACE drops a function's SET clauses: pin it again (see
-- migration 6).
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION append_to_stream(text, text, text, bigint, new_event[], '
        'stock_guard_row[], catalogue_price[], read_model_product[], '
        'read_model_stock_change[], read_model_order[], read_model_order_update[], '
        'read_model_order_item[]) SET search_path = %s, pg_temp',
        quote_ident(current_schema()));
END;
$$;
