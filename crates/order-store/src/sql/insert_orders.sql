-- New orders. An order already present (a re-delivered OrderPlaced) is left
-- as it is.
INSERT INTO store_orders (
    id, tenant_id, order_number, customer_id, idempotency_key, status,
    currency, total, note, placed_at, updated_at, last_event_sequence)
SELECT *
FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::bigint[], $9::text[], $10::timestamptz[], $11::timestamptz[],
            $12::bigint[])
ON CONFLICT (id) DO NOTHING
