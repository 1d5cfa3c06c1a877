-- Keyset pagination by SKU: $2 is the last SKU of the previous page ('' for
-- the first page; every SKU sorts after it).
SELECT sku, name, unit_price, currency, on_hand, updated_at
FROM inventory
WHERE tenant_id = $1
  AND sku > $2
ORDER BY sku
LIMIT $3
