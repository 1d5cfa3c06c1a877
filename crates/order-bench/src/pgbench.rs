//! Baseline 2, SQL only: the CRUD checkout transaction
//! (`crud.process_checkout`, one call) driven by `pgbench`, PostgreSQL's
//! own load generator, written in C: the floor that no service in front of
//! the same transaction can beat.
//!
//! Same workload as the HTTP runs: two distinct random SKUs of the
//! catalogue, 1 to 3 units each, a fresh key per checkout. Latencies come
//! from pgbench's per-transaction log (`--log`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use crate::cpu::{sample_until_exit, CpuReading, PostgresCpu};
use crate::load::Figures;

/// The script pgbench runs per transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkout {
    /// `crud.process_checkout`, one call: the CRUD service's transaction.
    Crud,
    /// The least a checkout can be: the order row, its two lines and the two
    /// stock updates (in SKU order), as separate statements in one
    /// transaction; no duplicate check, no price or stock check.
    Minimal,
}

const MINIMAL: &str = r"\set s1 random(0, :skus - 1)
\set s2 (:s1 + random(1, :skus - 1)) % :skus
\set lo least(:s1, :s2)
\set hi greatest(:s1, :s2)
\set q1 random(1, 3)
\set q2 random(1, 3)
\set t1 1000 * :q1
\set t2 1000 * :q2
\set total :t1 + :t2
BEGIN;
INSERT INTO crud.orders (id, tenant_id, order_number, customer_id, idempotency_key, fingerprint, status, currency, total, note, placed_at, updated_at) SELECT k, 'bench', k::text, 'customer-' || :client_id, k::text, '', 'placed', 'PYG', :total::bigint, NULL, now(), now() FROM gen_random_uuid() AS k RETURNING id AS order_id \gset
INSERT INTO crud.order_lines (order_id, line_no, sku, name, quantity, unit_price, line_total) VALUES (:order_id, 1, 'SKU-' || lpad(:lo::text, 5, '0'), 'Product', :q1::integer, 1000, :t1::bigint), (:order_id, 2, 'SKU-' || lpad(:hi::text, 5, '0'), 'Product', :q2::integer, 1000, :t2::bigint);
UPDATE crud.products SET on_hand = on_hand - :q1::bigint, updated_at = now() WHERE tenant_id = 'bench' AND sku = 'SKU-' || lpad(:lo::text, 5, '0');
UPDATE crud.products SET on_hand = on_hand - :q2::bigint, updated_at = now() WHERE tenant_id = 'bench' AND sku = 'SKU-' || lpad(:hi::text, 5, '0');
END;
";

const SCRIPT: &str = r"\set s1 random(0, :skus - 1)
\set s2 (:s1 + random(1, :skus - 1)) % :skus
\set q1 random(1, 3)
\set q2 random(1, 3)
SELECT count(*) FROM crud.process_checkout('bench', gen_random_uuid()::text, 'customer-' || :client_id, 'pgbench', NULL, ARRAY['SKU-' || lpad(:s1::text, 5, '0'), 'SKU-' || lpad(:s2::text, 5, '0')], ARRAY[:q1, :q2]::integer[]);
";

/// Where pgbench is: on PATH, or in a Debian server package's bin directory.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// One pgbench run of `checkout` at `clients` connections for `duration`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    pgbench: &Path,
    checkout: Checkout,
    url: &str,
    skus: usize,
    clients: usize,
    duration: Duration,
    postgres: Option<PostgresCpu>,
) -> anyhow::Result<(Figures, CpuReading, CpuReading)> {
    let dir = std::env::temp_dir().join(format!("order-bench-pgbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("checkout.sql");
    std::fs::write(
        &script,
        match checkout {
            Checkout::Crud => SCRIPT,
            Checkout::Minimal => MINIMAL,
        },
    )?;
    let seconds = duration.as_secs().max(1);
    let before = CpuReading {
        postgres: postgres.and_then(|p| p.total()),
        client: Some(Duration::ZERO),
        server: None,
    };
    let child = Command::new(pgbench)
        .current_dir(&dir)
        .args(["--no-vacuum", "--protocol=prepared", "--log"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={}", clients.min(2)))
        .arg(format!("--time={seconds}"))
        .arg(format!("--define=skus={skus}"))
        .arg(format!("--file={}", script.display()))
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", pgbench.display()))?;
    // The client's CPU, sampled while it runs (it is gone once it exits).
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let sampler = sample_until_exit(pid);
    let output = child.wait_with_output().await?;
    let client = sampler.await.ok().flatten();
    // Let the postmaster reap pgbench's backends, so their CPU is counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = CpuReading {
        postgres: postgres.and_then(|p| p.total()),
        client,
        server: None,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tps: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
    let failed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            for line in std::fs::read_to_string(entry.path())?.lines() {
                // client_id transaction_no time_us script_no epoch epoch_us
                if let Some(us) = line.split(' ').nth(2).and_then(|t| t.parse::<u64>().ok()) {
                    latencies.push(Duration::from_micros(us));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let completed = latencies.len() as u64;
    // pgbench's own tps excludes connection set-up; keep its elapsed time.
    let elapsed = Duration::from_secs_f64(completed as f64 / tps.max(f64::MIN_POSITIVE));
    Ok((Figures::new(latencies, failed, elapsed), before, after))
}
