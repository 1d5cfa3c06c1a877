//! Rebuild throughput and memory on a large event store.
//!
//!     cargo build --release -p rebuild-projections
//!     ./target/release/rebuild-bench            # 1,000,000 events
//!     ./target/release/rebuild-bench --quick    # 20,000 events (CI smoke)
//!
//! Creates a fresh database on DATABASE_URL's server, writes a synthetic
//! history, then measures in one run:
//! - the baseline: reading every event in commit order and decoding it, no
//!   writes (the floor any rebuild pays);
//! - `rebuild-projections --json` (the real binary, in a child process, so
//!   its peak RSS is its own): events/s and peak RSS;
//! - `rebuild-projections --verify`: must report no drift.
//!
//! Prints the figures and the ratio rebuild/baseline. Asserts nothing about
//! speed: the machine is shared and noisy.

use std::process::Command;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use rebuild_projections::synthetic_history::{generate, HistorySpec};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

#[derive(Debug, Parser)]
struct Args {
    /// Admin URL of the server (a role that may create databases).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Tenants the history is spread over (each batch of the rebuild is
    /// written with one call per tenant in it).
    #[arg(long, default_value_t = 10)]
    tenants: usize,
    /// 20,000 events: checks that the bench works, in seconds.
    #[arg(long)]
    quick: bool,
    /// Keep the database afterwards.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let events = if args.quick { 20_000 } else { args.events };
    let rebuild_binary = std::env::current_exe()?
        .parent()
        .context("no directory for this executable")?
        .join("rebuild-projections");
    if !rebuild_binary.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p rebuild-projections` first",
            rebuild_binary.display()
        );
    }
    let admin = PgConnectOptions::from_str(&args.database_url)?.disable_statement_logging();
    let name = format!("rebuild_bench_{}", std::process::id());
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("connecting to DATABASE_URL")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let target = admin.clone().database(&name);
    let pool = sqlx::PgPool::connect_with(target.clone()).await?;
    order_store::MIGRATOR.run(&pool).await?;

    let started = Instant::now();
    let stats = generate(
        &pool,
        &HistorySpec {
            events,
            tenants: args.tenants,
            products_per_tenant: 50,
            seed: 1,
        },
    )
    .await?;
    println!(
        "history: {} events ({} orders) written in {:.1} s",
        stats.events,
        stats.orders,
        started.elapsed().as_secs_f64()
    );
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;

    // Baseline: read and decode every event in commit order, write nothing.
    let mut reader = pool.acquire().await?;
    let started = Instant::now();
    let mut cursor = rebuild_projections::rebuild::EventCursor::default();
    let mut read = 0_u64;
    loop {
        let batch = rebuild_projections::rebuild::read_events(
            &mut reader,
            cursor,
            rebuild_projections::rebuild::DEFAULT_BATCH_SIZE,
            rebuild_projections::rebuild::ReadLimit::EndedTransactions,
        )
        .await?;
        let Some((last, _)) = batch.last() else { break };
        cursor = *last;
        read += batch.len() as u64;
    }
    let baseline = read as f64 / started.elapsed().as_secs_f64();
    drop(reader);

    let url = order_store::with_database(&args.database_url, &name);
    let rebuild = run_json(&rebuild_binary, &url, &[])?;
    let verify = run_json(&rebuild_binary, &url, &["--verify"])?;
    let per_second = rebuild["events_per_second"].as_f64().unwrap_or(0.0);
    let peak = rebuild["peak_rss_bytes"].as_u64().unwrap_or(0);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| events | {} |", rebuild["events"]);
    println!("| baseline: read + decode in commit order | {baseline:.0} events/s |");
    println!("| rebuild (shadow tables + swap) | {per_second:.0} events/s |");
    println!(
        "| ratio rebuild / baseline | {:.2} |",
        per_second / baseline
    );
    println!(
        "| rebuild wall time | {:.1} s |",
        rebuild["seconds"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| rebuild peak RSS | {:.1} MiB |",
        peak as f64 / 1_048_576.0
    );
    println!(
        "| verify afterwards | {} ({:.0} events/s) |",
        if verify["ok"] == true {
            "no drift"
        } else {
            "DRIFT"
        },
        verify["events_per_second"].as_f64().unwrap_or(0.0)
    );
    println!("| rows | {} |", rebuild["rows"]);
    if cfg!(debug_assertions) {
        println!("(debug build: these figures say nothing about speed; use --release)");
    }
    pool.close().await;
    if !args.keep {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    if verify["ok"] != true {
        bail!("the rebuilt read model drifted from the events");
    }
    Ok(())
}

fn run_json(
    binary: &std::path::Path,
    url: &str,
    args: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let output = Command::new(binary)
        .args(args)
        .arg("--json")
        .env("DATABASE_URL", url)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading its summary; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(summary)
}
