SELECT sku, name, unit_price, currency
FROM inventory
WHERE tenant_id = $1
  AND sku = ANY($2::text[])
