use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// The server the tests use: `DATABASE_URL` (a role that may create
/// databases), or the local default the test script provides.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test, migrated, dropped when the value is
/// dropped (also when the test panics), so tests run in parallel.
#[derive(Debug)]
pub struct TestDatabase {
    pub pool: PgPool,
    name: String,
    admin: PgConnectOptions,
}

impl TestDatabase {
    pub async fn new() -> Self {
        Self::with_pool_size(16).await
    }

    /// A fresh database with no migrations applied.
    pub async fn unmigrated() -> Self {
        Self::create(16, false).await
    }

    pub async fn with_pool_size(max_connections: u32) -> Self {
        Self::create(max_connections, true).await
    }

    async fn create(max_connections: u32, migrate: bool) -> Self {
        let admin = PgConnectOptions::from_str(&admin_url())
            .expect("DATABASE_URL is not a PostgreSQL URL")
            .disable_statement_logging();
        let name = format!("store_orders_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {}: {e}", admin_url()));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(admin.clone().database(&name))
            .await
            .expect("connect to the test database");
        if migrate {
            order_store::MIGRATOR
                .run(&pool)
                .await
                .expect("migrations apply to a fresh database");
        }
        Self { pool, name, admin }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for this database (e.g. for a second pool).
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// Connection options for this database as the service connects in
    /// production: a login role that is only a member of this database's
    /// application role (`<database>_service`, migration 12), with no right
    /// to change the schema or the history, nor to connect elsewhere.
    pub async fn service_options(&self) -> PgConnectOptions {
        ensure_service_role(&self.admin).await;
        let mut conn = PgConnection::connect_with(&self.admin)
            .await
            .expect("connect as the test administrator");
        sqlx::raw_sql(&format!(
            "GRANT {} TO {SERVICE_ROLE}",
            application_role(&self.name)
        ))
        .execute(&mut conn)
        .await
        .expect("grant the database's application role to the test login");
        conn.close().await.ok();
        self.options()
            .username(SERVICE_ROLE)
            .password(SERVICE_PASSWORD)
    }

    /// The server's TCP address (a proxy's upstream): a socket directory or
    /// `localhost` is read as 127.0.0.1.
    pub fn address(&self) -> std::net::SocketAddr {
        let options = self.options();
        let host = options.get_host();
        let host = if host.starts_with('/') || host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", options.get_port()).parse().unwrap()
    }

    /// A URL for this database, for processes started by a test.
    pub fn url(&self) -> String {
        order_store::with_database(&admin_url(), &self.name)
    }

    /// Number of rows of `sql` (a `SELECT count(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot block on async
        // work; a thread with its own runtime can. It must not touch the
        // pool (its connections belong to the blocked runtime): FORCE ends
        // their sessions from the server side.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect_with(&admin).await {
                    let dropped =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    if dropped.is_ok() {
                        let role = application_role(&name);
                        let _ = sqlx::query(&format!("DROP ROLE IF EXISTS {role}"))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        });
        let _ = dropper.join();
    }
}

/// The login role tests serve as (cluster-wide, like every role).
pub const SERVICE_ROLE: &str = "store_orders_test_service";
const SERVICE_PASSWORD: &str = "store-orders-test-service";

/// A role named after a test database (`<database>_owner`...) is dropped
/// by the sweep once the database is gone.
///
/// The application role migration 12 creates for the database `name`
/// (test databases' names are short enough to be used whole).
pub fn application_role(name: &str) -> String {
    format!("{name}_service")
}

/// Creates [`SERVICE_ROLE`] once per test process (and copes with another
/// process creating it at the same moment), no longer a member of the
/// shared `store_orders_app` of migration 6 (migration 12 would make it a
/// member of every new database's role); and drops the application roles
/// of test databases that no longer exist (left by a test process that was
/// killed before it could drop them).
async fn ensure_service_role(admin: &PgConnectOptions) {
    static CREATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CREATED
        .get_or_init(|| async {
            let mut conn = PgConnection::connect_with(admin)
                .await
                .expect("connect as the test administrator");
            sqlx::raw_sql(&format!(
                "DO $$ BEGIN \
                   CREATE ROLE {SERVICE_ROLE} LOGIN PASSWORD '{SERVICE_PASSWORD}'; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
                 DO $$ BEGIN \
                   IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'store_orders_app') THEN \
                     REVOKE store_orders_app FROM {SERVICE_ROLE}; \
                   END IF; \
                 END $$;"
            ))
            .execute(&mut conn)
            .await
            .expect("create the service's test role");
            let orphans: Vec<String> = sqlx::query_scalar(
                "SELECT r.rolname::text FROM pg_roles AS r \
                 WHERE (r.rolname LIKE 'store\\_orders\\_test\\_%\\_service' \
                        OR r.rolname LIKE 'store\\_orders\\_test\\_%\\_owner') \
                   AND NOT EXISTS (SELECT 1 FROM pg_database AS d \
                                   WHERE r.rolname IN (d.datname || '_service', d.datname || '_owner'))",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
            for role in orphans {
                let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{role}\""))
                    .execute(&mut conn)
                    .await;
            }
            conn.close().await.ok();
        })
        .await;
}

/// A connection inside a transaction that holds a transaction id and stays
/// open (until ROLLBACK or drop): it holds back commit-order readers, as a
/// long-running transaction of any application would.
pub async fn open_transaction(options: &sqlx::postgres::PgConnectOptions) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect_with(options)
        .await
        .expect("connecting for a long transaction");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("BEGIN");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut conn)
        .await
        .expect("a transaction id");
    conn
}
