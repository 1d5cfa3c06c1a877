-- The write path in the database: one round trip per command.
--
-- project_read_model applies a fold of events (computed by the application,
-- crate order-store, module projection) to the read-model tables. It is the
-- one projection writer: the live append and the rebuild both call it. It
-- names tables without a schema, so search_path decides which tables it
-- writes (the rebuild points it at its shadow tables; PostgreSQL re-plans a
-- cached statement when search_path changes).
--
-- append_events is the live append: in one statement (one transaction), it
-- locks the inventory rows the change touches in SKU order, refuses a stock
-- change that would go below zero, inserts the events, and projects them.

CREATE TYPE read_model_product AS (
    tenant_id text, sku text, name text, unit_price bigint, currency text, defined_at timestamptz);

CREATE TYPE read_model_stock_change AS (
    tenant_id text, sku text, delta bigint, changed_at timestamptz);

CREATE TYPE read_model_order AS (
    id uuid, tenant_id text, order_number text, customer_id text, idempotency_key text,
    status text, currency text, total bigint, note text, placed_at timestamptz,
    updated_at timestamptz, last_event_sequence bigint);

CREATE TYPE read_model_order_update AS (
    id uuid, status text, updated_at timestamptz, sequence bigint);

CREATE TYPE read_model_order_item AS (
    order_id uuid, line_no integer, sku text, name text, quantity integer,
    unit_price bigint, line_total bigint);

CREATE TYPE new_event AS (
    aggregate_type text, aggregate_id text, sequence bigint, event_type text,
    event_version text, payload jsonb, metadata jsonb, tenant_id text, idempotency_key text);

-- A row the stock guard must lock: delta is the stock change to check, or
-- NULL for a row that is only defined (a product definition).
CREATE TYPE stock_guard_row AS (tenant_id text, sku text, delta bigint);

CREATE FUNCTION project_read_model(
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
    -- Product definitions: create the row (no stock yet) or replace name and
    -- price. updated_at only moves forward, whatever order batches come in.
    IF cardinality(products) > 0 THEN
        INSERT INTO inventory (tenant_id, sku, name, unit_price, currency, on_hand, updated_at)
        SELECT p.tenant_id, p.sku, p.name, p.unit_price, p.currency, 0, p.defined_at
        FROM unnest(products) AS p
        ON CONFLICT (tenant_id, sku) DO UPDATE
        SET name       = excluded.name,
            unit_price = excluded.unit_price,
            currency   = excluded.currency,
            updated_at = GREATEST(inventory.updated_at, excluded.updated_at);
    END IF;

    -- Net stock changes, one per (tenant, sku). Every one must find its row.
    IF cardinality(stock) > 0 THEN
        UPDATE inventory AS i
        SET on_hand    = i.on_hand + c.delta,
            updated_at = GREATEST(i.updated_at, c.changed_at)
        FROM unnest(stock) AS c
        WHERE i.tenant_id = c.tenant_id AND i.sku = c.sku;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed <> cardinality(stock) THEN
            RAISE EXCEPTION 'read model out of step: a stock change has no inventory row'
                USING ERRCODE = 'RM001';
        END IF;
    END IF;

    -- New orders: inserted once, by their OrderPlaced, in the transaction
    -- that appends it. A row already present means the read model is out of
    -- step: a loud error (store_orders_pkey), never a silent skip.
    IF cardinality(orders) > 0 THEN
        INSERT INTO store_orders (
            id, tenant_id, order_number, customer_id, idempotency_key, status,
            currency, total, note, placed_at, updated_at, last_event_sequence)
        SELECT o.id, o.tenant_id, o.order_number, o.customer_id, o.idempotency_key, o.status,
               o.currency, o.total, o.note, o.placed_at, o.updated_at, o.last_event_sequence
        FROM unnest(orders) AS o;
    END IF;

    -- Status changes. Each row remembers the last event of its stream
    -- applied to it; an event at or below that sequence changes nothing.
    IF cardinality(updates) > 0 THEN
        UPDATE store_orders AS o
        SET status              = u.status,
            updated_at          = u.updated_at,
            last_event_sequence = u.sequence
        FROM unnest(updates) AS u
        WHERE o.id = u.id AND o.last_event_sequence < u.sequence;
    END IF;

    IF cardinality(items) > 0 THEN
        INSERT INTO store_order_items (order_id, line_no, sku, name, quantity, unit_price, line_total)
        SELECT i.order_id, i.line_no, i.sku, i.name, i.quantity, i.unit_price, i.line_total
        FROM unnest(items) AS i;
    END IF;
END;
$$;

CREATE FUNCTION append_events(
    events new_event[],
    guard stock_guard_row[],
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[])
RETURNS TABLE (short_sku text, requested bigint, available bigint)
LANGUAGE plpgsql AS $$
BEGIN
    -- The stock guard: lock the rows in (tenant, sku) order, so that two
    -- checkouts over the same SKUs queue instead of deadlocking, and so that
    -- inventory is always locked before events (the rebuild's cut-over
    -- takes its locks in that order too).
    PERFORM 1
    FROM inventory AS i
    JOIN unnest(guard) AS g ON g.tenant_id = i.tenant_id AND g.sku = i.sku
    ORDER BY i.tenant_id, i.sku
    FOR UPDATE OF i;
    -- (With an empty guard the statement still takes inventory's table lock,
    -- at plan time: every append locks inventory before events.)

    -- A change that would go below zero, or a SKU without a row (available
    -- NULL): refuse it, store nothing.
    RETURN QUERY
    SELECT g.sku, -g.delta, i.on_hand
    FROM unnest(guard) AS g
    LEFT JOIN inventory AS i ON i.tenant_id = g.tenant_id AND i.sku = g.sku
    WHERE g.delta IS NOT NULL AND (i.sku IS NULL OR i.on_hand + g.delta < 0)
    ORDER BY g.tenant_id, g.sku
    LIMIT 1;
    IF FOUND THEN
        RETURN;
    END IF;

    -- The events. The primary key (stream, sequence) and the unique
    -- (tenant, kind, key) index make a concurrent duplicate fail here.
    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, e.tenant_id, e.idempotency_key
    FROM unnest(events) AS e;

    PERFORM project_read_model(products, stock, orders, updates, items);
END;
$$;
