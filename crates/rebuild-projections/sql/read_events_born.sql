-- On a Citus cluster: the next events born on one node (positions in
-- [$4, $5), its identity range) after that node's cursor ($1, $2), in its
-- commit order, from its transactions below $3 (its xmin asked just
-- before; the maximum when the cut-over's locks keep writers out), with
-- the coordinates of the stream's previous event when another node bore
-- it: the reader applies an event only after its predecessor
-- (order_store::commit_order). `!`: never NULL; `?`: may be.
SELECT e.transaction_id::text::bigint AS "xid!", e.position, e.aggregate_type,
       e.aggregate_id, e.sequence, e.event_type, e.event_version,
       e.payload::text AS "payload!", e.tenant_id,
       p.transaction_id::text::bigint AS "previous_xid?", p.position AS "previous_position?"
FROM events AS e
LEFT JOIN events AS p
       ON p.tenant_id = e.tenant_id AND p.aggregate_type = e.aggregate_type
      AND p.aggregate_id = e.aggregate_id AND p.sequence = e.sequence - 1
      AND (p.position < $4 OR p.position >= $5)
WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2)
  AND e.transaction_id < $3::text::xid8
  AND e.position >= $4 AND e.position < $5
ORDER BY e.transaction_id, e.position
LIMIT $6
