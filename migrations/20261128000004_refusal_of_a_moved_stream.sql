-- A refused append whose stream has moved on is a lost race, not a refusal.
--
-- A duplicate checkout that loaded the empty stream, then reached the stock
-- guard after the winner had committed (and taken the last units), used to be
-- answered "out of stock". Its stream had moved on since it was loaded: the
-- right answer is the winner's order. Now, before append_events reports a
-- shortage, it looks at the stream: if an event already holds the sequence
-- this append would write (the stream moved on since the caller loaded it),
-- it raises SQLSTATE SM001 ("stream moved") instead, and the caller re-runs
-- the command on the fresh stream, where it becomes a replay or a reused-key
-- refusal. The same holds for stock adjustments.
--
-- Under READ COMMITTED each statement of the function sees what committed
-- before it started; the winner held the inventory rows this append locks
-- until it committed, so once the lock is ours its events are visible here.

CREATE OR REPLACE FUNCTION append_events(
    events new_event[],
    guard stock_guard_row[],
    products read_model_product[],
    stock read_model_stock_change[],
    orders read_model_order[],
    updates read_model_order_update[],
    items read_model_order_item[])
RETURNS TABLE (short_sku text, requested bigint, available bigint)
LANGUAGE plpgsql AS $$
DECLARE
    shortage record;
BEGIN
    -- The stock guard: lock the rows in (tenant, sku) order (see migration 3).
    PERFORM 1
    FROM inventory AS i
    JOIN unnest(guard) AS g ON g.tenant_id = i.tenant_id AND g.sku = i.sku
    ORDER BY i.tenant_id, i.sku
    FOR UPDATE OF i;

    SELECT g.sku AS sku, -g.delta AS requested, i.on_hand AS available
    INTO shortage
    FROM unnest(guard) AS g
    LEFT JOIN inventory AS i ON i.tenant_id = g.tenant_id AND i.sku = g.sku
    WHERE g.delta IS NOT NULL AND (i.sku IS NULL OR i.on_hand + g.delta < 0)
    ORDER BY g.tenant_id, g.sku
    LIMIT 1;
    IF FOUND THEN
        -- A refusal counts only if the stream is as the caller loaded it.
        IF EXISTS (
            SELECT 1
            FROM unnest(events) AS e
            JOIN events AS s
              ON s.aggregate_type = e.aggregate_type
             AND s.aggregate_id = e.aggregate_id
             AND s.sequence = e.sequence
        ) THEN
            RAISE EXCEPTION 'the stream moved on since it was loaded'
                USING ERRCODE = 'SM001';
        END IF;
        short_sku := shortage.sku;
        requested := shortage.requested;
        available := shortage.available;
        RETURN NEXT;
        RETURN;
    END IF;

    INSERT INTO events (
        aggregate_type, aggregate_id, sequence, event_type, event_version,
        payload, metadata, tenant_id, idempotency_key)
    SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
           e.payload, e.metadata, e.tenant_id, e.idempotency_key
    FROM unnest(events) AS e;

    PERFORM project_read_model(products, stock, orders, updates, items);
END;
$$;
