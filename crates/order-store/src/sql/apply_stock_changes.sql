-- Net stock changes, one per (tenant, sku). Returns the rows it changed so
-- the caller can tell a missing product from a changed one.
UPDATE inventory AS i
SET on_hand    = i.on_hand + c.delta,
    updated_at = GREATEST(i.updated_at, c.changed_at)
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
    AS c (tenant_id, sku, delta, changed_at)
WHERE i.tenant_id = c.tenant_id
  AND i.sku = c.sku
RETURNING i.tenant_id, i.sku
