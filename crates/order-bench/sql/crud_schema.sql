-- The CRUD checkout that store-orders replaces: the design the seed
-- proposed. Plain tables, one PL/pgSQL function per checkout, the unique
-- (tenant_id, idempotency_key) index as the duplicate guard. It offers the
-- reads the service's read model offers (an order by id, a tenant's or a
-- customer's orders newest first), so it carries the same indexes.
CREATE SCHEMA crud;

CREATE TABLE crud.products (
    tenant_id  text        NOT NULL,
    sku        text        NOT NULL,
    name       text        NOT NULL,
    unit_price bigint      NOT NULL CHECK (unit_price >= 0),
    currency   text        NOT NULL,
    on_hand    bigint      NOT NULL CHECK (on_hand >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sku)
);

CREATE TABLE crud.orders (
    id              uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    order_number    text        NOT NULL,
    customer_id     text        NOT NULL,
    idempotency_key text        NOT NULL,
    fingerprint     text        NOT NULL,
    status          text        NOT NULL,
    currency        text        NOT NULL,
    total           bigint      NOT NULL,
    note            text,
    placed_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, order_number)
);
CREATE UNIQUE INDEX crud_orders_key ON crud.orders (tenant_id, idempotency_key);
CREATE INDEX crud_orders_newest ON crud.orders (tenant_id, placed_at DESC, id DESC);
CREATE INDEX crud_orders_customer_newest ON crud.orders (tenant_id, customer_id, placed_at DESC, id DESC);

CREATE TABLE crud.order_lines (
    order_id   uuid    NOT NULL REFERENCES crud.orders (id),
    line_no    integer NOT NULL,
    sku        text    NOT NULL,
    name       text    NOT NULL,
    quantity   integer NOT NULL,
    unit_price bigint  NOT NULL,
    line_total bigint  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- One checkout, one call. Inserts the order (ON CONFLICT on the key: an
-- existing order answers a retry, or refuses a reused key), then locks the
-- lines' products in SKU order, refuses a shortage (an exception, so the
-- order row goes too), inserts the lines and decrements stock.
-- Returns the order, one row per line, with how it came about.
CREATE FUNCTION crud.process_checkout(
    p_tenant text, p_key text, p_customer text, p_fingerprint text, p_note text,
    p_skus text[], p_quantities integer[])
RETURNS TABLE (
    outcome text, id uuid, order_number text, status text, currency text, total bigint,
    note text, placed_at timestamptz, updated_at timestamptz,
    line_no integer, sku text, name text, quantity integer, unit_price bigint, line_total bigint)
LANGUAGE plpgsql AS $$
DECLARE
    new_id   uuid := gen_random_uuid();
    placed   crud.orders;
    short    record;
BEGIN
    -- HAVING: an unknown SKU inserts nothing (and is reported below).
    INSERT INTO crud.orders AS o (id, tenant_id, order_number, customer_id, idempotency_key,
                                  fingerprint, status, currency, total, note, placed_at, updated_at)
    SELECT new_id, p_tenant, 'ORD-' || upper(left(replace(new_id::text, '-', ''), 12)), p_customer,
           p_key, p_fingerprint, 'placed', min(p.currency), sum(p.unit_price * l.quantity), p_note,
           now(), now()
    FROM unnest(p_skus, p_quantities) AS l(sku, quantity)
    JOIN crud.products AS p ON p.tenant_id = p_tenant AND p.sku = l.sku
    HAVING count(*) = cardinality(p_skus)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING * INTO placed;
    IF NOT FOUND THEN
        -- The key exists (a retry, or a reused key), or a SKU is unknown.
        SELECT * INTO placed FROM crud.orders AS o
        WHERE o.tenant_id = p_tenant AND o.idempotency_key = p_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown sku' USING ERRCODE = 'CR002';
        END IF;
        IF placed.customer_id <> p_customer OR placed.fingerprint <> p_fingerprint THEN
            RETURN QUERY SELECT 'reused', placed.id, placed.order_number, placed.status,
                placed.currency, placed.total, placed.note, placed.placed_at, placed.updated_at,
                NULL::integer, NULL::text, NULL::text, NULL::integer, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
        RETURN QUERY SELECT 'replayed', placed.id, placed.order_number, placed.status,
            placed.currency, placed.total, placed.note, placed.placed_at, placed.updated_at,
            l.line_no, l.sku, l.name, l.quantity, l.unit_price, l.line_total
        FROM crud.order_lines AS l WHERE l.order_id = placed.id ORDER BY l.line_no;
        RETURN;
    END IF;

    -- Lock the products in SKU order (no deadlock between two checkouts),
    -- refuse a shortage (the exception takes the order row with it).
    PERFORM 1 FROM crud.products AS p
    WHERE p.tenant_id = p_tenant AND p.sku = ANY (p_skus)
    ORDER BY p.sku FOR UPDATE;
    SELECT l.sku, l.quantity, p.on_hand INTO short
    FROM unnest(p_skus, p_quantities) AS l(sku, quantity)
    JOIN crud.products AS p ON p.tenant_id = p_tenant AND p.sku = l.sku
    WHERE p.on_hand < l.quantity
    ORDER BY l.sku LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'out of stock' USING ERRCODE = 'CR001',
            DETAIL = short.sku || ' ' || short.quantity || ' ' || short.on_hand;
    END IF;

    UPDATE crud.products AS p
    SET on_hand = p.on_hand - l.quantity, updated_at = now()
    FROM unnest(p_skus, p_quantities) AS l(sku, quantity)
    WHERE p.tenant_id = p_tenant AND p.sku = l.sku;

    RETURN QUERY
    WITH line AS (
        INSERT INTO crud.order_lines AS ol (order_id, line_no, sku, name, quantity, unit_price, line_total)
        SELECT new_id, l.n, l.sku, p.name, l.quantity, p.unit_price, p.unit_price * l.quantity
        FROM unnest(p_skus, p_quantities) WITH ORDINALITY AS l(sku, quantity, n)
        JOIN crud.products AS p ON p.tenant_id = p_tenant AND p.sku = l.sku
        RETURNING ol.line_no, ol.sku, ol.name, ol.quantity, ol.unit_price, ol.line_total)
    SELECT 'created', placed.id, placed.order_number, placed.status, placed.currency,
        placed.total, placed.note, placed.placed_at, placed.updated_at,
        line.line_no, line.sku, line.name, line.quantity, line.unit_price, line.line_total
    FROM line ORDER BY line.line_no;
END;
$$;
