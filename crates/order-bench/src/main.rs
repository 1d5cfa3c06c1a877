//! `order-bench`: the store-orders checkout against the plain-SQL checkout
//! it replaces, measured side by side in one run.
//!
//!     cargo run --release -p order-bench               # 10 s per step
//!     cargo run --release -p order-bench -- --quick   # 1 s per step (CI smoke)
//!
//! 1. A fresh database: migrations, one tenant, 1,000 SKUs with ample stock
//!    (and the same catalogue in the baseline's own tables).
//! 2. The real service, started as a child process (this binary re-executed
//!    as `order-service serve`: the same code, the same release build) on a
//!    random port, pool of `--pool-size` connections.
//! 3. Closed-loop load (reqwest, kept-alive connections) on
//!    `POST /v1/checkout`, orders of 1-3 random lines, at each concurrency;
//!    then the baseline transaction, over sqlx, at the same concurrency and
//!    pool size.
//! 4. Replays only; 20% replays mixed into new orders; a storm of 64
//!    concurrent duplicates of one key; the read path `GET /v1/orders/{id}`.
//! 5. One table, the service's peak RSS, and the targets met or not.
//!
//! Speed is reported, never asserted: the machine is shared and noisy.

mod baseline;
mod load;
mod service;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use load::{closed_loop, Figures, Outcome};
use order_domain::{
    Currency, IdempotencyKey, Money, ProductName, Sku, StockDelta, StockReason, TenantId,
};
use order_store::{Actor, CatalogueCommands, CommandContext};
use rand::Rng;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// The entry point for the child process that plays the service.
const SERVICE_ARG: &str = "__order-service";

#[derive(Debug, Parser)]
#[command(name = "order-bench")]
struct Args {
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
    /// Database connections, for the service and for the baseline alike.
    #[arg(long, default_value_t = 16)]
    pool_size: u32,
    #[arg(long, default_value_t = 1_000)]
    skus: usize,
}

const TENANT: &str = "bench";
const SECRET: &str = "order-bench-secret-order-bench-secret-0123";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args_os();
    let program = argv.next();
    let first = argv.next();
    if first.as_deref() == Some(std::ffi::OsStr::new(SERVICE_ARG)) {
        return order_service::cli::main_with_args(program.into_iter().chain(argv)).await;
    }
    let args = Args::parse();
    order_client::install_tls_provider();
    let step = Duration::from_secs(if args.quick { 1 } else { args.seconds });

    let admin = PgConnectOptions::from_str_url(&args.database_url)?;
    let name = format!("order_bench_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let outcome = run(&args, step, &admin, &name).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    outcome
}

trait FromStrUrl: Sized {
    fn from_str_url(url: &str) -> anyhow::Result<Self>;
}

impl FromStrUrl for PgConnectOptions {
    fn from_str_url(url: &str) -> anyhow::Result<Self> {
        Ok(url.parse::<PgConnectOptions>()?.disable_statement_logging())
    }
}

/// One order request: its key, its body, and whose it is.
#[derive(Debug, Clone)]
struct Placed {
    key: String,
    body: serde_json::Value,
    worker: usize,
    id: String,
}

async fn run(
    args: &Args,
    step: Duration,
    admin: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<()> {
    let options = admin.clone().database(name);
    let pool = PgPoolOptions::new()
        .max_connections(args.pool_size)
        .connect_with(options.clone())
        .await?;
    order_store::MIGRATOR.run(&pool).await?;
    let skus = seed(&pool, args.skus).await?;
    baseline::prepare(&pool, TENANT, &skus, 1_000_000).await?;

    let url = order_store::with_database(&args.database_url, name);
    let mut child = service::start(SERVICE_ARG, &url, SECRET, args.pool_size).await?;
    let base = format!("http://{}", child.address);
    println!(
        "service: pid {} on {base}, pool {} connections; baseline pool {} connections",
        child.pid, args.pool_size, args.pool_size
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
    let placed: Arc<Mutex<Vec<Placed>>> = Arc::default();

    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        let service = new_orders(
            &http,
            &base,
            &tokens,
            &sku_names,
            &placed,
            concurrency,
            step,
        )
        .await;
        let plain = plain_orders(&pool, &sku_names, concurrency, step).await;
        rows.push((concurrency, service, plain));
    }
    let replay_pool: Arc<Vec<Placed>> =
        Arc::new(placed.lock().map(|p| p.clone()).unwrap_or_default());
    let replays = replays_only(&http, &base, &tokens, &replay_pool, 16, step).await;
    let mixed = mixed(&http, &base, &tokens, &sku_names, &replay_pool, 16, step).await;
    let reads = reads(&http, &base, &tokens, &replay_pool, 16, step).await;
    let storm = storm(&http, &base, &tokens[0]).await?;
    let peak_rss = child.peak_rss_bytes();
    child.stop().await;

    println!();
    println!("New orders, closed loop, {} s per step:", step.as_secs());
    println!();
    println!("| concurrency | service orders/s | p50 ms | p95 ms | p99 ms | baseline orders/s | p50 ms | p95 ms | p99 ms | service/baseline |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (c, s, b) in &rows {
        println!(
            "| {c} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} |",
            s.per_second(),
            s.ms(0.5),
            s.ms(0.95),
            s.ms(0.99),
            b.per_second(),
            b.ms(0.5),
            b.ms(0.95),
            b.ms(0.99),
            s.per_second() / b.per_second()
        );
    }
    let failures: u64 = rows.iter().map(|(_, s, b)| s.failed + b.failed).sum();
    println!();
    println!("Other scenarios (service, concurrency 16):");
    println!();
    println!("| scenario | requests/s | p50 ms | p95 ms | p99 ms | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, f) in [
        ("replays only (200, Idempotent-Replayed)", &replays),
        ("20% replays mixed into new orders", &mixed),
        ("GET /v1/orders/{id}", &reads),
    ] {
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            f.per_second(),
            f.ms(0.5),
            f.ms(0.95),
            f.ms(0.99),
            f.failed
        );
    }
    println!();
    println!(
        "Storm: 64 concurrent duplicates of one key all answered in {:.1} ms: {} x 201, {} x 200 replayed, {} other.",
        storm.0.as_secs_f64() * 1000.0, storm.1, storm.2, storm.3
    );
    println!(
        "Service peak RSS: {:.1} MiB.",
        peak_rss.unwrap_or(0) as f64 / 1_048_576.0
    );
    println!("Failed requests in the new-order steps: {failures}.");
    if cfg!(debug_assertions) {
        println!();
        println!("(debug build: these figures say nothing about speed; use --release)");
    }
    if let Some((_, s, b)) = rows.iter().find(|(c, _, _)| *c == 16) {
        println!();
        println!("Targets at concurrency 16:");
        let ratio = s.per_second() / b.per_second();
        println!(
            "- new orders >= 0.5x baseline (aim 0.8x): {ratio:.2}x {}",
            verdict(ratio >= 0.5)
        );
        let replay_ratio = replays.per_second() / s.per_second();
        println!(
            "- replays >= 2x new orders: {replay_ratio:.2}x {}",
            verdict(replay_ratio >= 2.0)
        );
        println!(
            "- p99 of new orders <= 20 ms: {:.1} ms {}",
            s.ms(0.99),
            verdict(s.ms(0.99) <= 20.0)
        );
    }
    if let Some(bytes) = peak_rss {
        let mib = bytes as f64 / 1_048_576.0;
        println!(
            "- service peak RSS <= 100 MiB: {mib:.1} MiB {}",
            verdict(mib <= 100.0)
        );
    }
    pool.close().await;
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met {
        "(met)"
    } else {
        "(MISSED)"
    }
}

/// 1,000 products with a million units each, through the store's commands.
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

/// 1 to 3 distinct random SKUs, 1 to 3 units each.
fn random_lines(skus: &[String]) -> Vec<(String, i64)> {
    let mut rng = rand::rng();
    let count = rng.random_range(1..=3);
    let mut lines: Vec<(String, i64)> = Vec::with_capacity(count);
    while lines.len() < count {
        let sku = &skus[rng.random_range(0..skus.len())];
        if !lines.iter().any(|(s, _)| s == sku) {
            lines.push((sku.clone(), rng.random_range(1..=3)));
        }
    }
    lines.sort();
    lines
}

fn body(lines: &[(String, i64)]) -> serde_json::Value {
    json!({ "lines": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>() })
}

async fn post_checkout(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let response = http
        .post(format!("{base}/v1/checkout"))
        .bearer_auth(token)
        .header(order_api::IDEMPOTENCY_KEY, key)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

async fn new_orders(
    http: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    skus: &Arc<Vec<String>>,
    placed: &Arc<Mutex<Vec<Placed>>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (http, base, tokens, skus, placed) = (
        http.clone(),
        base.to_owned(),
        tokens.clone(),
        skus.clone(),
        placed.clone(),
    );
    closed_loop(concurrency, step, move |worker, _| {
        let (http, base, tokens, skus, placed) = (
            http.clone(),
            base.clone(),
            tokens.clone(),
            skus.clone(),
            placed.clone(),
        );
        async move {
            let key = uuid::Uuid::new_v4().to_string();
            let body = body(&random_lines(&skus));
            match post_checkout(&http, &base, &tokens[worker], &key, &body).await {
                Some((201, order)) => {
                    let id = order["id"].as_str().unwrap_or_default().to_owned();
                    if let Ok(mut placed) = placed.lock() {
                        if placed.len() < 20_000 {
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

async fn plain_orders(
    pool: &sqlx::PgPool,
    skus: &Arc<Vec<String>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (pool, skus) = (pool.clone(), skus.clone());
    closed_loop(concurrency, step, move |worker, _| {
        let (pool, skus) = (pool.clone(), skus.clone());
        async move {
            let key = uuid::Uuid::new_v4().to_string();
            let lines = random_lines(&skus);
            match baseline::checkout(&pool, TENANT, &key, &format!("customer-{worker}"), &lines)
                .await
            {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            }
        }
    })
    .await
}

async fn replays_only(
    http: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (http, base, tokens, earlier) = (
        http.clone(),
        base.to_owned(),
        tokens.clone(),
        earlier.clone(),
    );
    closed_loop(concurrency, step, move |_, _| {
        let (http, base, tokens, earlier) =
            (http.clone(), base.clone(), tokens.clone(), earlier.clone());
        async move {
            if earlier.is_empty() {
                return Outcome::Failed;
            }
            let old = &earlier[rand::rng().random_range(0..earlier.len())];
            match post_checkout(&http, &base, &tokens[old.worker], &old.key, &old.body).await {
                Some((200, order)) if order["id"] == old.id.as_str() => Outcome::Ok,
                _ => Outcome::Failed,
            }
        }
    })
    .await
}

async fn mixed(
    http: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    skus: &Arc<Vec<String>>,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (http, base, tokens, skus, earlier) = (
        http.clone(),
        base.to_owned(),
        tokens.clone(),
        skus.clone(),
        earlier.clone(),
    );
    closed_loop(concurrency, step, move |worker, _| {
        let (http, base, tokens, skus, earlier) = (
            http.clone(),
            base.clone(),
            tokens.clone(),
            skus.clone(),
            earlier.clone(),
        );
        async move {
            let replay = !earlier.is_empty() && rand::rng().random_bool(0.2);
            if replay {
                let old = &earlier[rand::rng().random_range(0..earlier.len())];
                match post_checkout(&http, &base, &tokens[old.worker], &old.key, &old.body).await {
                    Some((200, _)) => Outcome::Ok,
                    _ => Outcome::Failed,
                }
            } else {
                let key = uuid::Uuid::new_v4().to_string();
                match post_checkout(
                    &http,
                    &base,
                    &tokens[worker],
                    &key,
                    &body(&random_lines(&skus)),
                )
                .await
                {
                    Some((201, _)) => Outcome::Ok,
                    _ => Outcome::Failed,
                }
            }
        }
    })
    .await
}

async fn reads(
    http: &reqwest::Client,
    base: &str,
    tokens: &Arc<Vec<String>>,
    earlier: &Arc<Vec<Placed>>,
    concurrency: usize,
    step: Duration,
) -> Figures {
    let (http, base, tokens, earlier) = (
        http.clone(),
        base.to_owned(),
        tokens.clone(),
        earlier.clone(),
    );
    closed_loop(concurrency, step, move |_, _| {
        let (http, base, tokens, earlier) =
            (http.clone(), base.clone(), tokens.clone(), earlier.clone());
        async move {
            if earlier.is_empty() {
                return Outcome::Failed;
            }
            let old = &earlier[rand::rng().random_range(0..earlier.len())];
            let response = http
                .get(format!("{base}/v1/orders/{}", old.id))
                .bearer_auth(&tokens[old.worker])
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
async fn storm(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<(Duration, usize, usize, usize)> {
    let key = uuid::Uuid::new_v4().to_string();
    let request = body(&[("SKU-00007".to_owned(), 1)]);
    let started = Instant::now();
    let answers = futures::future::join_all(
        (0..64).map(|_| post_checkout(http, base, token, &key, &request)),
    )
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
