-- Events the relay could not publish because their message would exceed
-- the broker's max_payload (an order of 100 lines with long names, say).
-- Without this, one such event stopped all publishing: the broker refuses
-- it (and drops the connection), the relay retries it for ever. Now the
-- relay records it here and publishes in its place a small message under
-- the same Nats-Msg-Id and subject that says where to read it
-- (docs/EVENTS.md, "Events too large for the broker"), so the stream still
-- holds exactly one message per event and nothing behind it waits.
CREATE TABLE relay_parked_events (
    tenant_id      text        NOT NULL,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL,
    -- The relay (its checkpoint name) that parked it.
    relay          text        NOT NULL,
    position       bigint      NOT NULL,
    -- The message it would have been, and the broker's limit then.
    size_bytes     bigint      NOT NULL,
    max_payload    bigint      NOT NULL,
    parked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, aggregate_type, aggregate_id, sequence, relay)
);

-- The service's application role (migration 12) may record and read them.
DO $$
DECLARE
    app text := CASE
        WHEN octet_length(current_database()) <= 55 THEN current_database() || '_service'
        ELSE left(current_database(), 46) || '_' || left(md5(current_database()), 8) || '_service'
    END;
BEGIN
    EXECUTE format('GRANT SELECT, INSERT ON relay_parked_events TO %I', app);
END;
$$;
