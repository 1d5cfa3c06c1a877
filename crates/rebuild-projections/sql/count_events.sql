-- Every event in the store, for the progress report (`!`: never NULL).
SELECT count(*) AS "events!" FROM events
