-- A page of the tenant's orders with their lines, newest first,
-- keyset-paginated on (placed_at, id): $3/$4 is the last row of the
-- previous page (a far-future sentinel for the first page).
SELECT o.id, o.order_number, o.status, o.customer_id, o.idempotency_key, o.currency,
       o.total, o.note, o.placed_at, o.updated_at,
       items.skus, items.names, items.quantities, items.unit_prices, items.line_totals
FROM store_orders AS o
CROSS JOIN LATERAL (
    SELECT array_agg(i.sku ORDER BY i.line_no)        AS skus,
           array_agg(i.name ORDER BY i.line_no)       AS names,
           array_agg(i.quantity ORDER BY i.line_no)   AS quantities,
           array_agg(i.unit_price ORDER BY i.line_no) AS unit_prices,
           array_agg(i.line_total ORDER BY i.line_no) AS line_totals
    FROM store_order_items AS i
    WHERE i.tenant_id = o.tenant_id
      AND i.order_id = o.id
) AS items
WHERE o.tenant_id = $1
  AND o.status = ANY($2::text[])
  AND (o.placed_at, o.id) < ($3::timestamptz, $4::uuid)
ORDER BY o.placed_at DESC, o.id DESC
LIMIT $5
