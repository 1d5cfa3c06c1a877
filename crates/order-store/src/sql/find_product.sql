SELECT sku, name, unit_price, currency, on_hand, updated_at
FROM inventory
WHERE tenant_id = $1
  AND sku = $2
