SELECT append_no, outcome, sku, requested, available, sequence, event_type, event_version, payload
FROM append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
