-- Whether this relay (its own checkpoint, or any node's `{name}@group{N}`
-- on a cluster) has published anything: a missing stream is then one that
-- was deleted, not one never created.
SELECT EXISTS (
    SELECT 1 FROM relay_checkpoints
    WHERE (name = $1 OR left(name, length($1) + 6) = $1 || '@group')
      AND position > 0
) AS "published!"
