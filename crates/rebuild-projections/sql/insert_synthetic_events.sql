-- A batch of synthetic events, column by column (the history generator).
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                    payload, metadata, tenant_id, idempotency_key)
SELECT t, i, s, e, v, p, m, tn, k
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[],
            $7::jsonb[], $8::text[], $9::text[]) AS x(t, i, s, e, v, p, m, tn, k)
