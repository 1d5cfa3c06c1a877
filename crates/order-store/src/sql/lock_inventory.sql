-- The stock guard: lock the inventory rows a change touches, in SKU order,
-- so that two multi-line checkouts over the same SKUs queue instead of
-- deadlocking, and read what is on hand under that lock.
SELECT sku, on_hand
FROM inventory
WHERE tenant_id = $1
  AND sku = ANY($2::text[])
ORDER BY sku
FOR UPDATE
