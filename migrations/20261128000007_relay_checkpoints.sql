-- Where each outbox relay stands: the last event (transaction id, position)
-- that JetStream has acknowledged, advanced only after every event up to
-- it was acknowledged. One row per relay name (one per JetStream stream on
-- one database node; see docs/EVENTS.md and docs/SCALE-OUT.md).
CREATE TABLE relay_checkpoints (
    name           text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    -- Events published so far (for operators; the cursor is what counts).
    published      bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'store_orders_app') THEN
        GRANT SELECT, INSERT, UPDATE ON relay_checkpoints TO store_orders_app;
    END IF;
END;
$$;
