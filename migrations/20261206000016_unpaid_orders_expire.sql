-- Unpaid orders expire (issue 24): an order left 'placed' longer than the
-- service's configured time gets an OrderExpired event (written by a
-- sweeper that every replica runs; the event store lets one in per
-- order), its stock goes back and its status becomes 'expired'.

ALTER TABLE store_orders DROP CONSTRAINT store_orders_status_known;
ALTER TABLE store_orders ADD CONSTRAINT store_orders_status_known
    CHECK (status IN ('placed', 'paid', 'shipped', 'cancelled', 'expired'));

-- The sweeper's question, oldest unpaid first, without reading paid,
-- shipped or cancelled orders.
CREATE INDEX store_orders_unpaid_by_age ON store_orders (placed_at, id)
    WHERE status = 'placed';
