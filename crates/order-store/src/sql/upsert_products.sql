-- Product definitions: create the inventory row (no stock yet) or replace its
-- name and price. updated_at only moves forward, whatever order batches
-- arrive in.
INSERT INTO inventory (tenant_id, sku, name, unit_price, currency, on_hand, updated_at)
SELECT d.tenant_id, d.sku, d.name, d.unit_price, d.currency, 0, d.defined_at
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[])
    AS d (tenant_id, sku, name, unit_price, currency, defined_at)
ON CONFLICT (tenant_id, sku) DO UPDATE
SET name       = excluded.name,
    unit_price = excluded.unit_price,
    currency   = excluded.currency,
    updated_at = GREATEST(inventory.updated_at, excluded.updated_at)
