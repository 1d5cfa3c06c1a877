-- As list_orders_of_tenant, for one customer ($6).
WHERE o.tenant_id = $1
  AND o.customer_id = $6
  AND o.status = ANY($2::text[])
  AND (o.placed_at, o.id) < ($3::timestamptz, $4::uuid)
ORDER BY o.placed_at DESC, o.id DESC
LIMIT $5
