-- The lines of new orders (see insert_orders.sql: once, or an error).
INSERT INTO store_order_items (order_id, line_no, sku, name, quantity, unit_price, line_total)
SELECT *
FROM UNNEST($1::uuid[], $2::integer[], $3::text[], $4::text[], $5::integer[], $6::bigint[],
            $7::bigint[])
