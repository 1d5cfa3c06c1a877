-- The event store: every change to an order, product or stock level, in the
-- order it was committed. Append-only: the trigger below refuses UPDATE,
-- DELETE and TRUNCATE.
--
-- The first seven columns are postgres-es' own (it reads streams with them);
-- the rest are what it lacks:
--   position        global order of appends, for the projection rebuild;
--   transaction_id  the appending transaction, so that a reader can tell
--                   positions still in flight (pg_snapshot_xmin) from gaps;
--   recorded_at     when the store accepted the event (audit; the domain's own
--                   times are in the payload);
--   tenant_id       whose event it is;
--   idempotency_key set on the first event of a keyed stream (a checkout's
--                   OrderPlaced, a StockAdjusted), to let the store itself
--                   refuse a second stream for the same (tenant, key).
CREATE TABLE events (
    position        bigint      GENERATED ALWAYS AS IDENTITY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    tenant_id       text        NOT NULL,
    idempotency_key text,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (aggregate_type, aggregate_id, sequence),
    CONSTRAINT events_position_key UNIQUE (position),
    CONSTRAINT events_key_starts_a_stream CHECK (idempotency_key IS NULL OR sequence = 1)
);

-- One stream per (tenant, key) and kind of stream, whatever the stream id:
-- the store's own guarantee, not only the UUID derivation's.
CREATE UNIQUE INDEX events_one_stream_per_key
    ON events (tenant_id, aggregate_type, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Commit-order reads for projections: (transaction_id, position).
CREATE INDEX events_by_transaction ON events (transaction_id, position);

CREATE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_append_only_rows
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_append_only_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();
