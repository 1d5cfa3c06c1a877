-- A table's owner (quoted), and whether this session may hand a table to it.
SELECT quote_ident(pg_get_userbyid(relowner)::text) AS "owner!",
       pg_has_role(current_user, relowner, 'MEMBER') AS "may_assign!"
FROM pg_class
WHERE oid = $1::text::regclass
