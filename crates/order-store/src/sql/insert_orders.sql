-- New orders. No ON CONFLICT: an order is inserted by its OrderPlaced, once,
-- in the transaction that appends that event (the events' primary key makes
-- a second OrderPlaced impossible). A row already present means the read
-- model is out of step with the events: better a loud error than a silent
-- skip (which would also have taken the stock a second time).
INSERT INTO store_orders (
    id, tenant_id, order_number, customer_id, idempotency_key, status,
    currency, total, note, placed_at, updated_at, last_event_sequence)
SELECT *
FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::bigint[], $9::text[], $10::timestamptz[], $11::timestamptz[],
            $12::bigint[])
