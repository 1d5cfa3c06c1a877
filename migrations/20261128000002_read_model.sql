-- The read side, kept by the projections in the same transaction as the
-- events it derives from. Every value here comes from event data (never from
-- now()), so a replay of the events reproduces these tables exactly.

CREATE TABLE store_orders (
    id                  uuid        PRIMARY KEY,
    tenant_id           text        NOT NULL,
    order_number        text        NOT NULL,
    customer_id         text        NOT NULL,
    -- AUDIT-106: Idempotency key
    idempotency_key     text,
    status              text        NOT NULL
        CONSTRAINT store_orders_status_known
        CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled')),
    currency            text        NOT NULL,
    total               bigint      NOT NULL CONSTRAINT store_orders_total_not_negative CHECK (total >= 0),
    note                text,
    placed_at           timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    -- The sequence of the last event of this order's stream applied here;
    -- an event at or below it has been applied already and changes nothing.
    last_event_sequence bigint      NOT NULL,
    CONSTRAINT store_orders_number_per_tenant UNIQUE (tenant_id, order_number)
);

COMMENT ON COLUMN store_orders.idempotency_key IS
    'AUDIT-106: Idempotency key. The client''s Idempotency-Key of the checkout that placed this order; '
    'with tenant_id it is the order''s identity (id = UUIDv5 of the pair), so a retried checkout '
    'finds this order instead of creating a second one. NULL only for orders that did not come '
    'through a keyed checkout.';

CREATE UNIQUE INDEX store_orders_tenant_idempotency_key
    ON store_orders (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Listing newest first, for staff (whole tenant) and for one customer.
CREATE INDEX store_orders_tenant_newest_first
    ON store_orders (tenant_id, placed_at DESC, id DESC);
CREATE INDEX store_orders_customer_newest_first
    ON store_orders (tenant_id, customer_id, placed_at DESC, id DESC);

CREATE TABLE store_order_items (
    order_id   uuid    NOT NULL REFERENCES store_orders (id) ON DELETE CASCADE,
    line_no    integer NOT NULL CHECK (line_no >= 1),
    sku        text    NOT NULL,
    name       text    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 10000),
    unit_price bigint  NOT NULL CHECK (unit_price >= 0),
    line_total bigint  NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- The catalogue and the stock guard: a checkout that would take on_hand
-- below zero fails in the transaction that would have stored its events.
CREATE TABLE inventory (
    tenant_id  text        NOT NULL,
    sku        text        NOT NULL,
    name       text        NOT NULL,
    unit_price bigint      NOT NULL CHECK (unit_price >= 0),
    currency   text        NOT NULL,
    on_hand    bigint      NOT NULL CONSTRAINT inventory_on_hand_not_negative CHECK (on_hand >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sku)
);
