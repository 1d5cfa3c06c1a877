SELECT outcome, sku, requested, available, sequence, event_type, event_version, payload
FROM abandon_checkout($1, $2, $3, $4, $5, $6, $7, $8)
