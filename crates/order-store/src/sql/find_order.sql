WHERE o.tenant_id = $1
  AND o.id = $2
  AND ($3::text IS NULL OR o.customer_id = $3)
