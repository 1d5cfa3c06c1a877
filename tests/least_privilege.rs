//! One application role per database (migration 12): the service's rights
//! in one store reach no other store on the same server, a database is
//! closed to roles granted nothing, and a migration that cannot set this up
//! fails saying what to run instead of going on without the grants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use store_orders_tests::database::{admin_url, application_role};
use store_orders_tests::TestDatabase;

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url()).await.unwrap()
}

async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql).execute(conn).await.unwrap();
}

/// A login role named after `db` (so the harness sweeps it if the test dies).
async fn login_role(db: &TestDatabase, suffix: &str, extra: &str) -> (String, String) {
    let role = format!("{}_{suffix}", db.name());
    let password = uuid::Uuid::new_v4().simple().to_string();
    run(
        &mut admin().await,
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}' {extra}"),
    )
    .await;
    (role, password)
}

async fn drop_role(role: &str) {
    let mut conn = admin().await;
    let _ = sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await;
}

fn is_refused(result: &Result<PgConnection, sqlx::Error>) -> bool {
    matches!(result, Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501"))
}

#[tokio::test]
async fn a_stores_service_role_reaches_no_other_store_and_a_role_granted_nothing_cannot_connect() {
    let shop = TestDatabase::new().await;
    let other = TestDatabase::new().await;
    let service = shop.service_options().await;
    let mut conn = PgConnection::connect_with(&service).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(events, 0, "the service reads its own store");
    let elsewhere = PgConnection::connect_with(&service.clone().database(other.name())).await;
    assert!(
        is_refused(&elsewhere),
        "the service's login connects to another store: {elsewhere:?}"
    );
    let (nobody, password) = login_role(&shop, "owner", "").await;
    let stranger: PgConnectOptions = shop.options().username(&nobody).password(&password);
    let refused = PgConnection::connect_with(&stranger).await;
    drop_role(&nobody).await;
    assert!(
        is_refused(&refused),
        "a role granted nothing connects: {refused:?}"
    );
    let public_connects: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database AS d, \
           aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) AS acl \
         WHERE d.datname = current_database() AND acl.grantee = 0)",
    )
    .fetch_one(&shop.pool)
    .await
    .unwrap();
    assert!(!public_connects, "PUBLIC keeps a right on the database");
    let role = application_role(shop.name());
    let (grants_here, grants_there): (bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'events', 'INSERT'), \
                has_table_privilege($1, 'events', 'UPDATE')",
    )
    .bind(&role)
    .fetch_one(&shop.pool)
    .await
    .unwrap();
    assert!(grants_here && !grants_there, "append, never rewrite");
}

/// The store's migrations up to `last` (a version), as an owner would have
/// applied them before upgrading.
fn migrations_up_to(last: i64) -> Migrator {
    let migrations: Vec<_> = order_store::MIGRATOR
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

#[tokio::test]
async fn a_migration_that_may_not_create_the_role_fails_saying_what_to_run_then_applies_after_it() {
    let db = TestDatabase::unmigrated().await;
    let (owner, password) = login_role(&db, "owner", "NOCREATEROLE").await;
    let mut admin = admin().await;
    run(
        &mut admin,
        &format!("ALTER DATABASE {name} OWNER TO {owner}", name = db.name()),
    )
    .await;
    // Migration 6 needs store_orders_app, which the server has (any earlier
    // store created it); create it here should this server have none.
    run(
        &mut admin,
        "DO $$ BEGIN CREATE ROLE store_orders_app NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    )
    .await;
    let options = db.options().username(&owner).password(&password);
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    run(&mut conn, &format!("ALTER SCHEMA public OWNER TO {owner}")).await;
    let failed = order_store::MIGRATOR.run(&mut conn).await;
    let Err(sqlx::migrate::MigrateError::ExecuteMigration(
        sqlx::Error::Database(error),
        20261206000012,
    )) = &failed
    else {
        panic!("migration 12 without CREATEROLE: {failed:?}");
    };
    let role = application_role(db.name());
    assert!(
        error
            .message()
            .contains("cannot create the application role"),
        "{error:?}"
    );
    let hint = error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|e| e.hint())
        .unwrap_or_default()
        .to_owned();
    assert!(
        hint.contains(&format!("CREATE ROLE {role} NOLOGIN"))
            && hint.contains(&format!("GRANT {role} TO {owner} WITH ADMIN OPTION")),
        "{hint}"
    );
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        applied.iter().all(|v| *v < 20261206000012),
        "a failed migration 12 is not recorded as applied: {applied:?}"
    );
    // What the hint says, then migrate again.
    run(
        &mut admin,
        &format!("CREATE ROLE {role} NOLOGIN; GRANT {role} TO {owner} WITH ADMIN OPTION"),
    )
    .await;
    order_store::MIGRATOR.run(&mut conn).await.unwrap();
    let can_append: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'events', 'INSERT')")
        .bind(&role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(can_append);
    conn.close().await.ok();
    drop(db);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop_role(&owner).await;
}

#[tokio::test]
async fn a_login_of_the_shared_role_keeps_its_rights_in_an_upgraded_store_and_the_shared_role_loses_them(
) {
    let db = TestDatabase::unmigrated().await;
    migrations_up_to(20261206000011)
        .run(&db.pool)
        .await
        .unwrap();
    let (login, password) = login_role(&db, "owner", "IN ROLE store_orders_app").await;
    order_store::MIGRATOR.run(&db.pool).await.unwrap();
    let role = application_role(db.name());
    let (member, shared_keeps): (bool, bool) = sqlx::query_as(
        "SELECT pg_has_role($1, $2, 'MEMBER'), has_table_privilege('store_orders_app', 'events', 'SELECT')",
    )
    .bind(&login)
    .bind(&role)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let mut conn = PgConnection::connect_with(&db.options().username(&login).password(&password))
        .await
        .unwrap();
    let reads: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM store_orders")
        .fetch_one(&mut conn)
        .await;
    conn.close().await.ok();
    drop_role(&login).await;
    assert!(member, "the login was carried over to the store's role");
    assert!(reads.is_ok(), "{reads:?}");
    assert!(
        !shared_keeps,
        "store_orders_app keeps rights in the upgraded store"
    );
}
