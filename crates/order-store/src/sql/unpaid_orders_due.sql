-- Unpaid orders placed before $1, oldest first, at most $2: what the
-- expiry sweeper expires next (store_orders_unpaid_by_age, migration 16).
-- (`!`: never NULL.)
SELECT o.tenant_id AS "tenant_id!", o.id AS "id!"
FROM store_orders AS o
WHERE o.status = 'placed' AND o.placed_at < $1
ORDER BY o.placed_at, o.id
LIMIT $2
