-- Newest first, keyset-paginated on (placed_at, id): $3/$4 is the last row
-- of the previous page (a far-future sentinel for the first page).
WHERE o.tenant_id = $1
  AND o.status = ANY($2::text[])
  AND (o.placed_at, o.id) < ($3::timestamptz, $4::uuid)
ORDER BY o.placed_at DESC, o.id DESC
LIMIT $5
