//! The `rebuild-projections` command line: rebuild store-orders' read model (`store_orders`,
//! `store_order_items`, `inventory`, `store_checkout_abandonments`, `store_unpaid_holds`) from
//! the event store.
//!
//! Default: build shadow tables while the service runs, then swap them in
//! atomically (writers pause for the cut-over only). `--verify`: build and
//! compare row by row, change nothing, exit 1 on drift. `--in-place`:
//! truncate and replay in one transaction (maintenance windows).
//!
//! Exit status: 0 done (no drift), 1 drift found, 2 error.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::rebuild::{
    rebuild, RebuildError, RebuildMode, RebuildOptions, RebuildProgress, RebuildSummary, Stage,
};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::postgres::PgPoolOptions;

#[derive(Debug, Parser)]
#[command(
    name = "rebuild-projections",
    version,
    about = "Rebuild or verify the read model from the event store."
)]
struct Cli {
    /// PostgreSQL URL of the service's database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Build and compare with the live tables, row by row; change nothing.
    #[arg(long, conflicts_with = "in_place")]
    verify: bool,
    /// Truncate and replay in one transaction, locking writers out.
    #[arg(long)]
    in_place: bool,
    /// Events per batch.
    #[arg(long, default_value_t = crate::rebuild::DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch_size: i64,
    /// Schema for the shadow tables (replaced if it exists).
    #[arg(long, default_value = "projection_rebuild")]
    shadow_schema: String,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// A progress bar on a terminal: events done/total, events/s, ETA.
struct Bar(ProgressBar);

impl RebuildProgress for Bar {
    fn started(&self, events_in_store: u64) {
        self.0.set_length(events_in_store);
    }

    fn stage(&self, stage: Stage) {
        self.0.set_message(stage_name(stage));
    }

    fn applied(&self, events: u64) {
        self.0.inc(events);
        if self.0.position() > self.0.length().unwrap_or(0) {
            self.0.set_length(self.0.position());
        }
    }

    fn waiting(&self, why: &str) {
        self.0.println(format!("waiting: {why}"));
    }
}

/// Off a terminal: stage changes and waits, one line each, on stderr, with
/// the time since the start.
struct Lines(std::time::Instant);

impl RebuildProgress for Lines {
    fn started(&self, events_in_store: u64) {
        eprintln!(
            "rebuild [{:>6.1} s]: {events_in_store} events in the store",
            self.0.elapsed().as_secs_f64()
        );
    }

    fn stage(&self, stage: Stage) {
        eprintln!(
            "rebuild [{:>6.1} s]: {}",
            self.0.elapsed().as_secs_f64(),
            stage_name(stage)
        );
    }

    fn waiting(&self, why: &str) {
        eprintln!(
            "rebuild [{:>6.1} s]: waiting: {why}",
            self.0.elapsed().as_secs_f64()
        );
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Replaying => "replaying committed events into shadow tables",
        Stage::Indexing => "building indexes",
        Stage::Locking => "taking the cut-over locks",
        Stage::CatchingUp => "replaying the last events",
        Stage::Comparing => "comparing with the live tables",
        Stage::Swapping => "swapping the rebuilt tables in",
    }
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The whole command line: parses the arguments, runs, reports; returns the
/// exit status.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(summary) => {
            let drifted = summary.drift.as_ref().is_some_and(|d| !d.is_clean());
            report(&cli, &summary);
            if drifted {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": format!("{e:#}") })
                );
            }
            eprintln!("rebuild-projections: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<RebuildSummary> {
    // One plain connection first: its error names the cause (refused,
    // authentication, unknown database) where a pool would say "timed out".
    let probe = <sqlx::PgConnection as sqlx::Connection>::connect(&cli.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
    sqlx::Connection::close(probe).await.ok();
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&cli.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"))?;
    let options = RebuildOptions {
        mode: if cli.verify {
            RebuildMode::Verify
        } else if cli.in_place {
            RebuildMode::InPlace
        } else {
            RebuildMode::Swap
        },
        batch_size: cli.batch_size,
        shadow_schema: cli.shadow_schema.clone(),
        ..RebuildOptions::default()
    };
    let result = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg}\n[{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let progress = Bar(bar);
        let result = rebuild(&pool, &options, &progress).await;
        progress.0.finish_and_clear();
        result
    } else {
        rebuild(&pool, &options, &Lines(std::time::Instant::now())).await
    };
    result.map_err(|e| match e {
        RebuildError::Connect(e) => anyhow::anyhow!("cannot connect to DATABASE_URL: {e}"),
        other => anyhow::Error::new(other),
    })
}

fn report(cli: &Cli, summary: &RebuildSummary) {
    let mode = match summary.mode {
        RebuildMode::Swap => "rebuilt (shadow tables swapped in)",
        RebuildMode::Verify => "verified",
        RebuildMode::InPlace => "rebuilt in place",
    };
    let rows: Vec<String> = summary
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let peak = peak_rss_bytes();
    if let Some(drift) = &summary.drift {
        for table in drift
            .tables
            .iter()
            .filter(|t| t.only_live + t.only_rebuilt > 0)
        {
            eprintln!(
                "drift in {}: {} row(s) only in the live table, {} only in the rebuild",
                table.table, table.only_live, table.only_rebuilt
            );
            for example in &table.examples {
                eprintln!("  {example}");
            }
        }
    }
    if cli.json {
        let drift = summary.drift.as_ref().map(|d| {
            d.tables
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "table": t.table, "only_live": t.only_live,
                        "only_rebuilt": t.only_rebuilt, "examples": t.examples,
                    })
                })
                .collect::<Vec<_>>()
        });
        let summary = serde_json::json!({
            "ok": summary.drift.as_ref().is_none_or(|d| d.is_clean()),
            "mode": format!("{:?}", summary.mode).to_lowercase(),
            "events": summary.events,
            "batches": summary.batches,
            "seconds": summary.elapsed.as_secs_f64(),
            "events_per_second": summary.events_per_second(),
            "rows": summary.rows.iter().map(|(t, n)| (t.to_string(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            "drift": drift,
            "peak_rss_bytes": peak,
        });
        println!("{summary}");
    } else {
        eprintln!(
            "{mode}: {} events in {:.1} s ({:.0} events/s), {}; peak RSS {} MiB{}",
            summary.events,
            summary.elapsed.as_secs_f64(),
            summary.events_per_second(),
            rows.join(", "),
            peak.map_or_else(|| "?".to_owned(), |b| (b / (1024 * 1024)).to_string()),
            match &summary.drift {
                Some(d) if d.is_clean() => "; no drift".to_owned(),
                Some(d) => format!("; DRIFT: {} row(s) differ", d.drifted_rows()),
                None => String::new(),
            }
        );
    }
}
