//! A Citus cluster of the test's own: a coordinator and two workers, each a
//! private PostgreSQL ([`OwnCluster`]: own data directory, free port,
//! removed afterwards) with the citus extension, the workers registered
//! with the coordinator; the project's migrations applied on the
//! coordinator, then `order_store::distribute`. Needs the extension built
//! into this machine's PostgreSQL (`../shared/citus/build.sh`):
//! [`citus_installed`] says whether it is.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::own_cluster::{server_binaries, OwnCluster};

/// Whether this machine's PostgreSQL has the citus extension.
pub fn citus_installed() -> bool {
    server_binaries()
        .parent()
        .map(|version| version.join("lib/citus.so").exists())
        .unwrap_or(false)
}

#[derive(Debug)]
pub struct CitusCluster {
    pub coordinator: OwnCluster,
    pub workers: Vec<OwnCluster>,
    /// The coordinator's `postgres` database, migrated and distributed.
    pub pool: PgPool,
}

const SETTINGS: [&str; 4] = [
    "shared_preload_libraries=citus",
    "max_connections=200",
    "wal_level=logical",
    "fsync=off",
];

async fn connect(port: u16) -> PgConnection {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres")
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("connecting to the node on {port}: {e}"))
}

impl CitusCluster {
    /// Starts the nodes, registers the workers, migrates and distributes.
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    /// As [`Self::start`], leaving the schema undistributed (a single-node
    /// store on the coordinator) unless `distributed`.
    pub async fn start_with(distributed: bool) -> Self {
        let coordinator = OwnCluster::start_with(&SETTINGS);
        let workers: Vec<OwnCluster> = (0..2).map(|_| OwnCluster::start_with(&SETTINGS)).collect();
        for node in std::iter::once(&coordinator).chain(&workers) {
            let mut conn = connect(node.port).await;
            sqlx::query("CREATE EXTENSION IF NOT EXISTS citus")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.ok();
        }
        let mut conn = connect(coordinator.port).await;
        sqlx::query("SELECT citus_set_coordinator_host('127.0.0.1', $1)")
            .bind(i32::from(coordinator.port))
            .execute(&mut conn)
            .await
            .unwrap();
        for worker in &workers {
            sqlx::query("SELECT citus_add_node('127.0.0.1', $1)")
                .bind(i32::from(worker.port))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        order_store::MIGRATOR
            .run(&mut conn)
            .await
            .expect("the migrations apply on a Citus coordinator");
        if distributed {
            order_store::distribute(&mut conn)
                .await
                .expect("the schema distributes");
        }
        conn.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(Self::options_of(coordinator.port))
            .await
            .unwrap();
        Self {
            coordinator,
            workers,
            pool,
        }
    }

    /// Starts one more worker and adds it to the cluster (it holds no
    /// shard until one is moved there); answers its port.
    pub async fn add_worker(&mut self) -> u16 {
        let worker = OwnCluster::start_with(&SETTINGS);
        let mut conn = connect(worker.port).await;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS citus")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        sqlx::query("SELECT citus_add_node('127.0.0.1', $1)")
            .bind(i32::from(worker.port))
            .execute(&self.pool)
            .await
            .unwrap();
        let port = worker.port;
        self.workers.push(worker);
        port
    }

    fn options_of(port: u16) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("postgres")
            .database("postgres")
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
    }

    /// Connection options of the coordinator.
    pub fn options(&self) -> PgConnectOptions {
        Self::options_of(self.coordinator.port)
    }

    /// A URL of the coordinator, for processes.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.coordinator.port
        )
    }

    /// The worker (port) that holds `tenant`'s shard of `events`.
    pub async fn worker_of(&self, tenant: &str) -> u16 {
        let port: i32 = sqlx::query_scalar(
            "SELECT s.nodeport FROM citus_shards AS s \
             WHERE s.shardid = get_shard_id_for_distribution_column('events', $1)",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        u16::try_from(port).unwrap()
    }

    /// Moves `tenant`'s shards (and their colocated ones) from the worker
    /// on port `from` to the one on `to`, online (Citus' default transfer).
    pub async fn move_tenant(&self, tenant: &str, from: u16, to: u16) {
        sqlx::query(
            "SELECT citus_move_shard_placement(\
               get_shard_id_for_distribution_column('events', $1), \
               '127.0.0.1', $2, '127.0.0.1', $3)",
        )
        .bind(tenant)
        .bind(i32::from(from))
        .bind(i32::from(to))
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Tenants whose shards are on different workers: one per worker.
    pub async fn tenants_on_each_worker(&self) -> Vec<String> {
        let mut found: Vec<(u16, String)> = Vec::new();
        for i in 0..200 {
            let tenant = format!("shop-{i}");
            let worker = self.worker_of(&tenant).await;
            if !found.iter().any(|(w, _)| *w == worker) {
                found.push((worker, tenant));
            }
            if found.len() == self.workers.len() {
                break;
            }
        }
        assert_eq!(found.len(), self.workers.len(), "a tenant on every worker");
        found.into_iter().map(|(_, tenant)| tenant).collect()
    }
}
