-- Whether this session could disable the event store's append-only trigger
-- or truncate the history: a superuser, or a member of the role that owns
-- `events` (NULL before the migrations: then no).
SELECT r.rolsuper OR pg_has_role(current_user, c.relowner, 'MEMBER') AS privileged
FROM pg_roles AS r, pg_class AS c
WHERE r.rolname = current_user AND c.oid = to_regclass('events')
