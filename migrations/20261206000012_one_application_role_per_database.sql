-- One application role per database, and no database open to every role.
--
-- Roles are cluster-wide. Migration 6 granted the service's rights to one
-- role, store_orders_app, in every database it migrated, so a login made a
-- member for one store could read and append in every other store on the
-- same server; and where the migration could not create the role it said
-- so in a notice and skipped the grants for good.
--
-- From here each database has its own group role, named after it:
-- `<database>_service` (a database name over 55 bytes is cut to 46 and
-- followed by 8 hex digits of its md5, so that two long names sharing a
-- prefix get two roles). It holds exactly the service's rights in this
-- database (read and append events; read and write the read model, stock
-- and the relay's checkpoints; read the migrations table; the lag
-- function), and CONNECT to this database, which PUBLIC no longer has:
-- a role granted nothing here cannot even connect.
--
-- Existing logins keep working: every member of store_orders_app is made
-- a member of the new role, then store_orders_app loses its rights in
-- this database (it keeps those of other databases until their own
-- migration 12 runs).
--
-- A migration that cannot create the role fails, saying what to run; it
-- never goes on without the grants.
DO $$
DECLARE
    app text := CASE
        WHEN octet_length(current_database()) <= 55 THEN current_database() || '_service'
        ELSE left(current_database(), 46) || '_' || left(md5(current_database()), 8) || '_service'
    END;
    member_name text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = app) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', app);
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot create the application role % for database %', app, current_database()
                    USING HINT = format(
                        'as a role with CREATEROLE, run: CREATE ROLE %I NOLOGIN; GRANT %I TO %I WITH ADMIN OPTION; then migrate again (and GRANT %I TO the service''s login role)',
                        app, app, current_user, app);
        END;
    END IF;
    -- The database's own rights: only its owner (or a superuser) may change
    -- them; anyone else gets a warning and nothing done, so ask first.
    IF NOT has_database_privilege(app, current_database(), 'CONNECT')
       OR EXISTS (SELECT 1 FROM pg_database AS d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) AS acl
                  WHERE d.datname = current_database() AND acl.grantee = 0
                    AND acl.privilege_type IN ('CONNECT', 'TEMPORARY')) THEN
        IF NOT EXISTS (SELECT 1 FROM pg_database AS d
                       WHERE d.datname = current_database()
                         AND pg_has_role(current_user, d.datdba, 'MEMBER')) THEN
            RAISE EXCEPTION 'only the owner of database % may take CONNECT from PUBLIC', current_database()
                USING HINT = format(
                    'as the database''s owner, run: REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC; GRANT CONNECT ON DATABASE %I TO %I; then migrate again',
                    current_database(), current_database(), app);
        END IF;
        EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), app);
    EXECUTE format('GRANT SELECT, INSERT ON events TO %I', app);
    EXECUTE format(
        'GRANT SELECT, INSERT, UPDATE ON store_orders, store_order_items, inventory, '
        'store_checkout_abandonments, relay_checkpoints TO %I', app);
    EXECUTE format('GRANT SELECT ON _sqlx_migrations TO %I', app);
    EXECUTE format('GRANT USAGE ON SEQUENCE events_position_seq TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION commit_order_lag() TO %I', app);

    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'store_orders_app') THEN
        FOR member_name IN
            SELECT m.rolname
            FROM pg_auth_members AS a
            JOIN pg_roles AS g ON g.oid = a.roleid
            JOIN pg_roles AS m ON m.oid = a.member
            WHERE g.rolname = 'store_orders_app'
        LOOP
            BEGIN
                EXECUTE format('GRANT %I TO %I', app, member_name);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot make % (a member of store_orders_app) a member of %', member_name, app
                    USING HINT = format('as a role with CREATEROLE, run: GRANT %I TO %I; then migrate again',
                                        app, member_name);
            END;
        END LOOP;
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM store_orders_app', current_schema());
        REVOKE ALL ON events, store_orders, store_order_items, inventory,
            store_checkout_abandonments, relay_checkpoints, _sqlx_migrations
            FROM store_orders_app;
        REVOKE ALL ON SEQUENCE events_position_seq FROM store_orders_app;
        REVOKE EXECUTE ON FUNCTION commit_order_lag() FROM store_orders_app;
    END IF;
END;
$$;
