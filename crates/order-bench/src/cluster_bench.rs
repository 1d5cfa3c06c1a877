//! `order-bench cluster --coordinator-url URL`: the service on one
//! PostgreSQL against the same service on a Citus cluster, same machine,
//! same run, same workload (new orders: two random SKUs of 1,000, a fresh
//! key each), in alternating slices.
//!
//! The cluster is the caller's (e.g. `../shared/citus/cluster.sh start`):
//! the bench migrates and distributes it (both idempotent) and seeds the
//! bench tenant's catalogue once. Reported per concurrency: orders/s,
//! p50/p99 latency, and the transactions each node committed per order
//! (`pg_stat_database.xact_commit`, every node's own, asked through
//! Citus): the round trips a checkout costs beyond the service's one
//! statement. Noisy 2-core machine: read the ratios.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::load::Figures;
use crate::{new_orders, seed, service, Target, SECRET, SERVICE_ARG, TENANT};

/// Committed transactions of every node of the cluster (or of the one
/// node), summed per node, for this database.
async fn commits(pool: &PgPool, cluster: bool) -> anyhow::Result<Vec<(String, i64)>> {
    let local: i64 = sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let mut nodes = vec![(
        if cluster { "coordinator" } else { "node" }.to_owned(),
        local,
    )];
    if cluster {
        let workers: Vec<(String, i32, String)> = sqlx::query_as(
            "SELECT nodename, nodeport, result FROM run_command_on_workers(\
               'SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()')",
        )
        .fetch_all(pool)
        .await?;
        for (host, port, result) in workers {
            nodes.push((format!("{host}:{port}"), result.trim().parse().unwrap_or(0)));
        }
    }
    Ok(nodes)
}

/// The SKUs of the bench tenant, seeding them where there are none.
async fn catalogue(pool: &PgPool, skus: usize) -> anyhow::Result<Vec<String>> {
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT sku FROM inventory WHERE tenant_id = $1 ORDER BY sku")
            .bind(TENANT)
            .fetch_all(pool)
            .await?;
    if !existing.is_empty() {
        return Ok(existing);
    }
    Ok(seed(pool, skus)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect())
}

/// How the comparison runs.
#[derive(Debug, Clone)]
pub struct ClusterBench {
    pub concurrency: Vec<usize>,
    /// Each system's time per concurrency, cut into `rounds` alternating
    /// slices.
    pub step: Duration,
    pub rounds: u32,
    /// Each service's connections.
    pub pool_size: u32,
    /// Products seeded where the tenant has none.
    pub skus: usize,
}

/// See the module's documentation.
pub async fn run(
    bench: &ClusterBench,
    single_url: &str,
    coordinator_url: &str,
    tokens: Arc<Vec<String>>,
) -> anyhow::Result<()> {
    let ClusterBench {
        concurrency,
        step,
        rounds,
        pool_size,
        skus,
    } = bench.clone();
    let single = PgPoolOptions::new()
        .max_connections(4)
        .connect(single_url)
        .await?;
    order_store::MIGRATOR.run(&single).await?;
    let coordinator_options: PgConnectOptions = coordinator_url
        .parse()
        .context("--coordinator-url is not a PostgreSQL URL")?;
    let cluster = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(coordinator_options)
        .await
        .context("connecting to the coordinator")?;
    order_store::MIGRATOR.run(&cluster).await?;
    {
        let mut conn = cluster.acquire().await?;
        order_store::distribute(&mut conn)
            .await
            .context("distributing the cluster's schema")?;
    }
    let single_skus = Arc::new(catalogue(&single, skus).await?);
    let cluster_skus = Arc::new(catalogue(&cluster, skus).await?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut single_service =
        service::start(&[SERVICE_ARG, "serve"], single_url, SECRET, pool_size).await?;
    let mut cluster_service =
        service::start(&[SERVICE_ARG, "serve"], coordinator_url, SECRET, pool_size).await?;
    let target = |process: &service::ServiceProcess, skus: &Arc<Vec<String>>| Target {
        http: http.clone(),
        base: format!("http://{}", process.address),
        tokens: tokens.clone(),
        skus: skus.clone(),
    };
    let systems = [
        (
            "one PostgreSQL",
            target(&single_service, &single_skus),
            &single,
            false,
        ),
        (
            "Citus: coordinator + 2 workers",
            target(&cluster_service, &cluster_skus),
            &cluster,
            true,
        ),
    ];
    println!(
        "\n## The service on one PostgreSQL and on a Citus cluster (same machine, same run)\n"
    );
    println!("| concurrency | system | orders/s | p50 ms | p99 ms | failed | transactions per order, per node |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    let slice = step / rounds.max(1);
    for &c in &concurrency {
        let mut figures: Vec<Option<Figures>> = vec![None, None];
        let mut transactions: Vec<Vec<(String, i64)>> = vec![Vec::new(), Vec::new()];
        for round in 0..rounds.max(1) {
            for k in 0..systems.len() {
                let at = (k + round as usize) % systems.len();
                let (_, target, pool, is_cluster) = &systems[at];
                let before = commits(pool, *is_cluster).await?;
                let measured = new_orders(target, None, c, slice).await;
                let after = commits(pool, *is_cluster).await?;
                for ((node, b), (_, a)) in before.iter().zip(after.iter()) {
                    match transactions[at].iter_mut().find(|(n, _)| n == node) {
                        Some(entry) => entry.1 += a - b,
                        None => transactions[at].push((node.clone(), a - b)),
                    }
                }
                figures[at] = Some(match figures[at].take() {
                    Some(earlier) => earlier.merge(measured),
                    None => measured,
                });
            }
        }
        let mut per_second = Vec::new();
        for (at, (label, ..)) in systems.iter().enumerate() {
            let Some(f) = &figures[at] else { continue };
            let orders = f.completed.max(1) as f64;
            let per_node: Vec<String> = transactions[at]
                .iter()
                .map(|(node, n)| format!("{node} {:.2}", *n as f64 / orders))
                .collect();
            println!(
                "| {c} | {label} | {:.0} | {:.2} | {:.2} | {} | {} |",
                f.per_second(),
                f.ms(0.5),
                f.ms(0.99),
                f.failed,
                per_node.join(", ")
            );
            per_second.push((f.per_second(), f.ms(0.5)));
        }
        if let [(single_rate, single_p50), (cluster_rate, cluster_p50)] = per_second[..] {
            println!(
                "| {c} | cluster / one node | {:.2}x | {:.2}x | | | |",
                cluster_rate / single_rate.max(f64::EPSILON),
                cluster_p50 / single_p50.max(f64::EPSILON)
            );
        }
    }
    single_service.stop().await;
    cluster_service.stop().await;
    Ok(())
}
