-- The migrations this database has applied, by version.
SELECT version FROM _sqlx_migrations WHERE success ORDER BY version
