//! `order-bench`: the store-orders checkout against the two things a user
//! would otherwise run, measured side by side in one run.
//!
//!     cargo run --release -p order-bench               # 10 s per step
//!     cargo run --release -p order-bench -- --quick   # 1 s per step (CI smoke)
//!     cargo run --release -p order-bench -- relay     # the outbox relay (`relay_bench.rs`)
//!
//! 1. A fresh database: migrations, one tenant, 1,000 SKUs with ample stock,
//!    and the same catalogue in the CRUD baseline's own tables.
//! 2. Three systems, each at every concurrency, on the same workload (two
//!    distinct random SKUs, 1 to 3 units each, a fresh key per checkout):
//!    - **service**: the real `order-service serve` (this binary
//!      re-executed: the same code, the same release build), pool of
//!      `--pool-size` connections;
//!    - **CRUD service** (`crud_service.rs`): the design store-orders
//!      replaces, one `process_checkout` call per request behind the
//!      service's own authentication, extractors, problems and middleware;
//!    - **SQL only** (`pgbench.rs`): the same `process_checkout` driven by
//!      pgbench, the floor nothing beats; its clients are connections, so
//!      it runs min(concurrency, pool size) of them.
//!
//!    The two HTTP systems are driven by the same closed-loop generator
//!    (reqwest, kept-alive connections); pgbench drives itself.
//! 3. CPU per order of the serving process, of PostgreSQL and of the load
//!    generator, from `/proc` (`cpu.rs`).
//! 4. Replays only; 20% replays mixed into new orders; a storm of 64
//!    concurrent duplicates of one key; the read path `GET /v1/orders/{id}`.
//! 5. Tables (Markdown), an SVG chart (`--chart`), and the targets met or not.
//!
//! Speed is reported, never asserted: the machine is shared and noisy, so
//! compare the ratios within one run.

mod chart;
mod cpu;
mod crud_service;
mod load;
mod pgbench;
mod relay_bench;
mod service;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use cpu::{own_cpu, process_cpu, CpuPerOperation, CpuReading, CpuSpent, PostgresCpu};
use load::{closed_loop, Figures, Outcome};
use order_domain::{
    Currency, IdempotencyKey, Money, ProductName, Sku, StockDelta, StockReason, TenantId,
};
use order_store::{Actor, CatalogueCommands, CommandContext};
use rand::Rng;
use serde_json::json;
use service::ServiceProcess;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The entry point for the child process that plays the service.
const SERVICE_ARG: &str = "__order-service";
/// The entry point for the child process that plays the CRUD baseline.
const CRUD_ARG: &str = "__crud-service";

#[derive(Debug, Parser)]
#[command(name = "order-bench")]
struct Args {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Admin URL of the PostgreSQL server (a role that may create databases).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    /// Seconds per step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// One second per step: checks that the bench works.
    #[arg(long)]
    quick: bool,
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<usize>,
    /// Database connections, for the service and the CRUD baseline alike.
    #[arg(long, default_value_t = 16)]
    pool_size: u32,
    #[arg(long, default_value_t = 1_000)]
    skus: usize,
    /// Each system's step is run in this many slices, in rotation with the
    /// others' (1 with --quick).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Keep TLS to PostgreSQL when the URL does not say otherwise (libpq's
    /// and sqlx's `prefer`). By default the bench connects every system in
    /// the clear (`sslmode=disable`): on loopback TLS only adds the same
    /// cost to all three (about a quarter of a short request, on both ends).
    #[arg(long)]
    tls: bool,
    /// Where to write the SVG chart.
    #[arg(long, default_value = "target/order-bench/checkout.svg")]
    chart: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// The outbox relay publishing a recorded history to NATS JetStream.
    Relay {
        /// Events in the history (about; --quick: 5,000).
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
}

const TENANT: &str = "bench";
const SECRET: &str = "order-bench-secret-order-bench-secret-0123";
/// The concurrency the targets are stated at.
const TARGET_CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args_os();
    let program = argv.next();
    let first = argv.next();
    if first.as_deref() == Some(std::ffi::OsStr::new(SERVICE_ARG)) {
        return order_service::cli::main_with_args(program.into_iter().chain(argv)).await;
    }
    if first.as_deref() == Some(std::ffi::OsStr::new(CRUD_ARG)) {
        return crud_service::main().await;
    }
    let mut args = Args::parse();
    if !args.tls && !args.database_url.contains("sslmode=") {
        let separator = if args.database_url.contains('?') {
            '&'
        } else {
            '?'
        };
        args.database_url = format!("{}{separator}sslmode=disable", args.database_url);
    }
    order_client::install_tls_provider();
    let step = Duration::from_secs(if args.quick { 1 } else { args.seconds });

    let admin = args
        .database_url
        .parse::<PgConnectOptions>()
        .context("DATABASE_URL is not a PostgreSQL URL")?
        .disable_statement_logging();
    let name = format!("order_bench_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let outcome = match &args.command {
        Some(BenchCommand::Relay { events }) => {
            let bench = relay_bench::RelayBench {
                events: if args.quick { 5_000 } else { *events },
                service_arg: SERVICE_ARG,
            };
            let url = order_store::with_database(&args.database_url, &name);
            relay_bench::run(&bench, &admin.clone().database(&name), &url).await
        }
        None => run(&args, step, &admin, &name).await,
    };
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    outcome
}

/// One order request: its key, its body, and whose it is.
#[derive(Debug, Clone)]
struct Placed {
    key: String,
    body: serde_json::Value,
    worker: usize,
    id: String,
}

/// A measured step: latencies and throughput, and the CPU each process
/// spent on it.
#[derive(Debug, Clone, Default)]
struct Step {
    figures: Figures,
    spent: CpuSpent,
    cpu: CpuPerOperation,
}

impl Step {
    fn new(figures: Figures, spent: CpuSpent) -> Self {
        let cpu = spent.per_operation(figures.completed + figures.failed);
        Self {
            figures,
            spent,
            cpu,
        }
    }

    /// Two rounds of the same step, as one.
    fn merge(self, other: Step) -> Step {
        if self.figures.completed + self.figures.failed == 0 {
            return other;
        }
        Step::new(
            self.figures.merge(other.figures),
            self.spent.add(&other.spent),
        )
    }
}

/// What the load generator needs to reach one HTTP system.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    base: String,
    tokens: Arc<Vec<String>>,
    skus: Arc<Vec<String>>,
}

async fn run(
    args: &Args,
    step: Duration,
    admin: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<()> {
    let options = admin.clone().database(name);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.clone())
        .await?;
    order_store::MIGRATOR.run(&pool).await?;
    let skus = seed(&pool, args.skus).await?;
    sqlx::raw_sql(crud_service::SCHEMA).execute(&pool).await?;
    sqlx::query(
        "INSERT INTO crud.products \
         SELECT tenant_id, sku, name, unit_price, currency, on_hand, updated_at FROM inventory",
    )
    .execute(&pool)
    .await?;
    let postgres = PostgresCpu::find(&pool).await;
    if postgres.is_none() {
        println!("PostgreSQL is not on this machine: its CPU is left out.");
    }
    let pgbench = pgbench::find();
    if pgbench.is_none() {
        println!("pgbench not found: the SQL-only baseline is left out.");
    }

    let url = order_store::with_database(&args.database_url, name);
    let pool_size = args.pool_size;
    let mut service = service::start(&[SERVICE_ARG, "serve"], &url, SECRET, pool_size).await?;
    let mut crud = service::start(&[CRUD_ARG], &url, SECRET, pool_size).await?;
    println!(
        "service: pid {} on {}; CRUD service: pid {} on {}; both with {pool_size} connections",
        service.pid, service.address, crud.pid, crud.address
    );
    let keys =
        order_service::JwtKeys::new(SECRET.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = TenantId::try_from(TENANT)?;
    let max_workers = args.concurrency.iter().copied().max().unwrap_or(64).max(64);
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..max_workers)
            .map(|w| {
                keys.mint(
                    &tenant,
                    &format!("customer-{w}"),
                    order_service::Role::Customer,
                    chrono::Duration::hours(2),
                )
            })
            .collect::<Result<_, _>>()?,
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let sku_names: Arc<Vec<String>> = Arc::new(skus.iter().map(|(s, _)| s.clone()).collect());
    let target = |process: &ServiceProcess| Target {
        http: http.clone(),
        base: format!("http://{}", process.address),
        tokens: tokens.clone(),
        skus: sku_names.clone(),
    };
    let (on_service, on_crud) = (target(&service), target(&crud));
    let placed: Arc<Mutex<Vec<Placed>>> = Arc::default();

    // Each system's step is cut into `rounds` slices, run in rotation
    // (service, CRUD, SQL; then CRUD, SQL, service; ...), so that a noisy
    // moment of the shared machine falls on all three alike.
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };
    let slice = Duration::from_secs((step.as_secs() / u64::from(rounds)).max(1));
    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        let (mut ours, mut theirs, mut floor) = (Step::default(), Step::default(), None::<Step>);
        for round in 0..rounds {
            for turn in 0..3 {
                match (round + turn) % 3 {
                    0 => {
                        let measured = measure(&pool, &service, postgres, || {
                            new_orders(&on_service, Some(&placed), concurrency, slice)
                        })
                        .await;
                        ours = ours.merge(measured);
                    }
                    1 => {
                        let measured = measure(&pool, &crud, postgres, || {
                            new_orders(&on_crud, None, concurrency, slice)
                        })
                        .await;
                        theirs = theirs.merge(measured);
                    }
                    _ => {
                        let Some(path) = &pgbench else { continue };
                        checkpoint(&pool).await;
                        // pgbench's clients are connections; the services
                        // multiplex their clients onto `pool_size` of them.
                        let clients = concurrency.min(pool_size as usize);
                        let (figures, before, after) =
                            pgbench::run(path, &url, args.skus, clients, slice, postgres).await?;
                        let measured = Step::new(figures, after.since(&before));
                        floor = Some(floor.unwrap_or_default().merge(measured));
                    }
                }
            }
        }
        rows.push((concurrency, ours, theirs, floor));
    }
    let replay_pool: Arc<Vec<Placed>> =
        Arc::new(placed.lock().map(|p| p.clone()).unwrap_or_default());
    let replays = measure(&pool, &service, postgres, || {
        replays_only(&on_service, &replay_pool, TARGET_CONCURRENCY, step)
    })
    .await;
    let mixed = measure(&pool, &service, postgres, || {
        mixed(&on_service, &replay_pool, TARGET_CONCURRENCY, step)
    })
    .await;
    let reads = measure(&pool, &service, postgres, || {
        reads(&on_service, &replay_pool, TARGET_CONCURRENCY, step)
    })
    .await;
    let storm = storm(&on_service).await?;
    let peak_rss = service.peak_rss_bytes();
    let crud_rss = crud.peak_rss_bytes();
    service.stop().await;
    crud.stop().await;

    report(
        args, step, &rows, &replays, &mixed, &reads, storm, peak_rss, crud_rss,
    )?;
    pool.close().await;
    Ok(())
}

/// Starts every step in the same state: right after a checkpoint, so that
/// each pays the same full-page writes (a checkpoint falling into one
/// system's step and not another's would skew the comparison). Needs a
/// superuser; without one the steps run as they come.
async fn checkpoint(pool: &sqlx::PgPool) {
    let _ = sqlx::query("CHECKPOINT").execute(pool).await;
}

/// Runs `work` against `process` after a checkpoint, reading CPU before and
/// after.
async fn measure<F, Fut>(
    pool: &sqlx::PgPool,
    process: &ServiceProcess,
    postgres: Option<PostgresCpu>,
    work: F,
) -> Step
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Figures>,
{
    checkpoint(pool).await;
    let pid = i32::try_from(process.pid).ok();
    let read = || CpuReading {
        server: pid.and_then(process_cpu),
        postgres: postgres.and_then(|p| p.total()),
        client: own_cpu(),
    };
    let before = read();
    let figures = work().await;
    let after = read();
    Step::new(figures, after.since(&before))
}

type Row = (usize, Step, Step, Option<Step>);

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    step: Duration,
    rows: &[Row],
    replays: &Step,
    mixed: &Step,
    reads: &Step,
    storm: (Duration, usize, usize, usize),
    peak_rss: Option<u64>,
    crud_rss: Option<u64>,
) -> anyhow::Result<()> {
    let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    println!();
    println!(
        "New orders, closed loop, {} s per step in {} slices run in rotation (CPU: milliseconds per order of each process):",
        step.as_secs(),
        if args.quick { 1 } else { args.rounds.max(1) }
    );
    println!();
    println!("| concurrency | system | orders/s | p50 ms | p95 ms | p99 ms | failed | CPU server | CPU PostgreSQL | CPU load generator |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, ours, theirs, floor) in rows {
        let systems = [
            ("service", Some(ours)),
            ("CRUD service", Some(theirs)),
            ("SQL only (pgbench)", floor.as_ref()),
        ];
        for (label, step) in systems {
            let Some(s) = step else { continue };
            let f = &s.figures;
            println!(
                "| {c} | {label} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
                f.per_second(),
                f.ms(0.5),
                f.ms(0.95),
                f.ms(0.99),
                f.failed,
                ms(s.cpu.server_ms),
                ms(s.cpu.postgres_ms),
                ms(s.cpu.client_ms),
            );
        }
    }
    println!();
    println!("Ratios (service / baseline, same run):");
    println!();
    println!("| concurrency | orders/s vs CRUD | orders/s vs SQL only | p99 vs CRUD | PostgreSQL CPU per order vs CRUD |");
    println!("|---:|---:|---:|---:|---:|");
    for (c, ours, theirs, floor) in rows {
        let vs_sql = floor
            .as_ref()
            .map(|f| format!("{:.2}", ours.figures.per_second() / f.figures.per_second()))
            .unwrap_or_else(|| "n/a".into());
        let pg = match (ours.cpu.postgres_ms, theirs.cpu.postgres_ms) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".into(),
        };
        println!(
            "| {c} | {:.2} | {vs_sql} | {:.2} | {pg} |",
            ours.figures.per_second() / theirs.figures.per_second(),
            ours.figures.ms(0.99) / theirs.figures.ms(0.99).max(f64::MIN_POSITIVE),
        );
    }
    println!();
    println!("Other scenarios (service, concurrency {TARGET_CONCURRENCY}):");
    println!();
    println!("| scenario | requests/s | p50 ms | p95 ms | p99 ms | failed | CPU server | CPU PostgreSQL |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, s) in [
        ("replays only (200, Idempotent-Replayed)", replays),
        ("20% replays mixed into new orders", mixed),
        ("GET /v1/orders/{id}", reads),
    ] {
        let f = &s.figures;
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
            f.per_second(),
            f.ms(0.5),
            f.ms(0.95),
            f.ms(0.99),
            f.failed,
            ms(s.cpu.server_ms),
            ms(s.cpu.postgres_ms),
        );
    }
    println!();
    println!(
        "Storm: 64 concurrent duplicates of one key all answered in {:.1} ms: {} x 201, {} x 200 replayed, {} other.",
        storm.0.as_secs_f64() * 1000.0, storm.1, storm.2, storm.3
    );
    let mib = |b: Option<u64>| b.map_or(0.0, |b| b as f64 / 1_048_576.0);
    println!(
        "Peak RSS: service {:.1} MiB, CRUD service {:.1} MiB.",
        mib(peak_rss),
        mib(crud_rss)
    );
    let failures: u64 = rows
        .iter()
        .map(|(_, s, c, f)| {
            s.figures.failed + c.figures.failed + f.as_ref().map_or(0, |f| f.figures.failed)
        })
        .sum();
    println!("Failed requests in the new-order steps: {failures}.");
    if cfg!(debug_assertions) {
        println!();
        println!("(debug build: these figures say nothing about speed; use --release)");
    }

    let series = |label: &str, pick: &dyn Fn(&Row) -> Option<&Step>| chart::Series {
        label: label.to_owned(),
        points: rows
            .iter()
            .filter_map(|row| {
                pick(row).map(|s| (row.0, s.figures.per_second(), s.figures.ms(0.99)))
            })
            .collect(),
    };
    let mut all = vec![
        series("store-orders service", &|r| Some(&r.1)),
        series("CRUD service (same HTTP stack)", &|r| Some(&r.2)),
    ];
    let floor = series(
        "SQL only (pgbench, same transaction, at most pool-size connections)",
        &|r| r.3.as_ref(),
    );
    if !floor.points.is_empty() {
        all.push(floor);
    }
    chart::draw(
        &args.chart,
        &format!(
            "New checkouts: {} s per system and concurrency, pool {}, one machine",
            step.as_secs(),
            args.pool_size
        ),
        &all,
    )?;
    println!("Chart: {}", args.chart.display());

    if let Some((_, ours, theirs, floor)) = rows.iter().find(|r| r.0 == TARGET_CONCURRENCY) {
        println!();
        println!("Targets at concurrency {TARGET_CONCURRENCY}:");
        let vs_crud = ours.figures.per_second() / theirs.figures.per_second();
        println!(
            "- new orders >= 0.9x the CRUD service: {vs_crud:.2}x {}",
            verdict(vs_crud >= 0.9)
        );
        if let Some(floor) = floor {
            let vs_sql = ours.figures.per_second() / floor.figures.per_second();
            println!(
                "- new orders >= 0.6x SQL only: {vs_sql:.2}x {}",
                verdict(vs_sql >= 0.6)
            );
        }
        let p99 = ours.figures.ms(0.99) / theirs.figures.ms(0.99).max(f64::MIN_POSITIVE);
        println!(
            "- p99 <= 1.5x the CRUD service's: {:.1} vs {:.1} ms = {p99:.2}x {}",
            ours.figures.ms(0.99),
            theirs.figures.ms(0.99),
            verdict(p99 <= 1.5)
        );
        let replay_ratio = replays.figures.per_second() / ours.figures.per_second();
        println!(
            "- replays >= 4x new orders: {replay_ratio:.2}x {}",
            verdict(replay_ratio >= 4.0)
        );
        if let Some(cpu) = ours.cpu.server_ms {
            println!(
                "- service CPU <= 0.4 ms per new order: {cpu:.3} ms {}",
                verdict(cpu <= 0.4)
            );
        }
    }
    if peak_rss.is_some() {
        println!(
            "- service peak RSS <= 100 MiB: {:.1} MiB {}",
            mib(peak_rss),
            verdict(mib(peak_rss) <= 100.0)
        );
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "(met)"
    } else {
        "(MISSED)"
    }
}

/// `count` products with a million units each, through the store's commands.
async fn seed(pool: &sqlx::PgPool, count: usize) -> anyhow::Result<Vec<(String, i64)>> {
    let catalogue = Arc::new(CatalogueCommands::new(pool.clone()));
    let staff = CommandContext {
        tenant: TenantId::try_from(TENANT)?,
        actor: Actor::Staff("bench".into()),
        request_id: None,
    };
    let pyg = Currency::try_from("PYG")?;
    let skus: Vec<(String, i64)> = (0..count)
        .map(|i| (format!("SKU-{i:05}"), 1_000 + (i as i64 * 37) % 99_000))
        .collect();
    for chunk in skus.chunks(50) {
        let mut work = Vec::new();
        for (sku, price) in chunk.iter().cloned() {
            let (catalogue, staff) = (catalogue.clone(), staff.clone());
            work.push(tokio::spawn(async move {
                let code = Sku::try_from(sku.as_str())?;
                catalogue
                    .define_product(
                        &staff,
                        code.clone(),
                        ProductName::try_from(format!("Product {sku}"))?,
                        Money::new(price, pyg),
                        chrono::Utc::now(),
                    )
                    .await?;
                catalogue
                    .adjust_stock(
                        &staff,
                        IdempotencyKey::try_from(format!("seed-{sku}"))?,
                        code,
                        StockDelta::try_from(1_000_000)?,
                        StockReason::Received,
                        chrono::Utc::now(),
                    )
                    .await?;
                anyhow::Ok(())
            }));
        }
        for task in work {
            task.await??;
        }
    }
    Ok(skus)
}

/// Two distinct random SKUs, 1 to 3 units each (pgbench's script draws the
/// same way).
fn random_lines(skus: &[String]) -> Vec<(String, i64)> {
    let mut rng = rand::rng();
    let first = rng.random_range(0..skus.len());
    let second = (first + rng.random_range(1..skus.len().max(2))) % skus.len();
    let mut lines = vec![
        (skus[first].clone(), rng.random_range(1..=3)),
        (skus[second].clone(), rng.random_range(1..=3)),
    ];
    lines.sort();
    lines
}

fn body(lines: &[(String, i64)]) -> serde_json::Value {
    json!({ "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>() })
}

async fn post_checkout(
    target: &Target,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let response = target
        .http
        .post(format!("{}/v1/checkout", target.base))
        .bearer_auth(token)
        .header(order_api::IDEMPOTENCY_KEY, key)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// New orders (201 expected); with `placed`, remembers up to 20,000 of them
/// for the replay scenarios.
async fn new_orders(
    target: &Target,
    placed: Option<&Arc<Mutex<Vec<Placed>>>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (target, placed) = (target.clone(), placed.cloned());
    closed_loop(concurrency, step, move |worker, _| {
        let (target, placed) = (target.clone(), placed.clone());
        async move {
            let key = uuid::Uuid::new_v4().to_string();
            let body = body(&random_lines(&target.skus));
            match post_checkout(&target, &target.tokens[worker], &key, &body).await {
                Some((201, order)) => {
                    if let Some(Ok(mut placed)) = placed.as_ref().map(|p| p.lock()) {
                        if placed.len() < 20_000 {
                            let id = order["id"].as_str().unwrap_or_default().to_owned();
                            placed.push(Placed {
                                key,
                                body,
                                worker,
                                id,
                            });
                        }
                    }
                    Outcome::Ok
                }
                _ => Outcome::Failed,
            }
        }
    })
    .await
}

fn pick(earlier: &[Placed]) -> Option<&Placed> {
    (!earlier.is_empty()).then(|| &earlier[rand::rng().random_range(0..earlier.len())])
}

async fn replays_only(
    target: &Target,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (target, earlier) = (target.clone(), earlier.clone());
    closed_loop(concurrency, step, move |_, _| {
        let (target, earlier) = (target.clone(), earlier.clone());
        async move {
            let Some(old) = pick(&earlier) else {
                return Outcome::Failed;
            };
            match post_checkout(&target, &target.tokens[old.worker], &old.key, &old.body).await {
                Some((200, order)) if order["id"] == old.id.as_str() => Outcome::Ok,
                _ => Outcome::Failed,
            }
        }
    })
    .await
}

async fn mixed(
    target: &Target,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (target, earlier) = (target.clone(), earlier.clone());
    closed_loop(concurrency, step, move |worker, _| {
        let (target, earlier) = (target.clone(), earlier.clone());
        async move {
            let replay = rand::rng().random_bool(0.2);
            match pick(&earlier).filter(|_| replay) {
                Some(old) => {
                    match post_checkout(&target, &target.tokens[old.worker], &old.key, &old.body)
                        .await
                    {
                        Some((200, _)) => Outcome::Ok,
                        _ => Outcome::Failed,
                    }
                }
                None => {
                    let key = uuid::Uuid::new_v4().to_string();
                    let body = body(&random_lines(&target.skus));
                    match post_checkout(&target, &target.tokens[worker], &key, &body).await {
                        Some((201, _)) => Outcome::Ok,
                        _ => Outcome::Failed,
                    }
                }
            }
        }
    })
    .await
}

async fn reads(
    target: &Target,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (target, earlier) = (target.clone(), earlier.clone());
    closed_loop(concurrency, step, move |_, _| {
        let (target, earlier) = (target.clone(), earlier.clone());
        async move {
            let Some(old) = pick(&earlier) else {
                return Outcome::Failed;
            };
            let response = target
                .http
                .get(format!("{}/v1/orders/{}", target.base, old.id))
                .bearer_auth(&target.tokens[old.worker])
                .send()
                .await;
            match response {
                Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                    Ok(_) => Outcome::Ok,
                    Err(_) => Outcome::Failed,
                },
                _ => Outcome::Failed,
            }
        }
    })
    .await
}

/// 64 identical requests at once; the time until the last is answered, and
/// how many were 201, 200-replayed and anything else.
async fn storm(target: &Target) -> anyhow::Result<(Duration, usize, usize, usize)> {
    let key = uuid::Uuid::new_v4().to_string();
    let request = body(&[("SKU-00007".to_owned(), 1)]);
    let token = &target.tokens[0];
    let started = Instant::now();
    let answers =
        futures::future::join_all((0..64).map(|_| post_checkout(target, token, &key, &request)))
            .await;
    let elapsed = started.elapsed();
    let created = answers
        .iter()
        .filter(|a| matches!(a, Some((201, _))))
        .count();
    let replayed = answers
        .iter()
        .filter(|a| matches!(a, Some((200, _))))
        .count();
    Ok((elapsed, created, replayed, 64 - created - replayed))
}
