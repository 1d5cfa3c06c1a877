-- The abandonment of (tenant $1, key $2), if the key was abandoned: when,
-- and by which customer (NULL: staff).
SELECT abandoned_at, customer_id
FROM store_checkout_abandonments
WHERE tenant_id = $1
  AND idempotency_key = $2
