-- Every privilege granted on a table, with its grantee quoted (or PUBLIC).
SELECT a.privilege_type AS "privilege!",
       CASE WHEN a.grantee = 0 THEN 'PUBLIC'
            ELSE quote_ident(pg_get_userbyid(a.grantee)::text) END AS "grantee!"
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.oid = $1::text::regclass
