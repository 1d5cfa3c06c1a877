-- One order with its lines (in line order), if the caller may see it: any
-- of the tenant's ($3 NULL, staff) or the customer $3's own.
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
  AND o.id = $2
  AND ($3::text IS NULL OR o.customer_id = $3)
