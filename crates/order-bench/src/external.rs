//! The external check: tools we did not write on both sides. `wrk` (C,
//! LuaJIT) posts new checkouts to the real service, and `pgbench` runs the
//! minimal SQL checkout (`pgbench::Checkout::Minimal`: the order row, two
//! lines and two stock updates, nothing checked) on the same PostgreSQL, in
//! alternating slices of the same run. Neither load generator is ours, so
//! neither side's figure depends on our client's cost.
//!
//!     cargo run --release -p order-bench -- external   # c=16 and 64, 14 s each
//!
//! wrk gets 64 customers' tokens, taken in turn (a shop's checkouts come from
//! many customers, as in the bench's own runs), and makes every Idempotency-Key unique (run,
//! thread, counter); its "Non-2xx or 3xx responses" must be 0. pgbench runs
//! min(concurrency, pool size) connections, like the service's pool.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::Command;

use crate::cpu::{process_cpu, sample_until_exit, CpuReading, PostgresCpu};
use crate::service::ServiceProcess;

const SCRIPT: &str = r#"-- New checkouts: two distinct random SKUs, 1 to 3 units each, a fresh key.
local counter = 0
local threads = 0
local prefix, tokens, skus

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  prefix = args[1]
  tokens = {}
  for t in string.gmatch(args[2], "[^,]+") do
    tokens[#tokens + 1] = t
  end
  skus = tonumber(args[3])
  math.randomseed(os.time() + tid * 7919)
end

function request()
  counter = counter + 1
  local s1 = math.random(0, skus - 1)
  local s2 = (s1 + math.random(1, skus - 1)) % skus
  local body = string.format(
    '{"lines":[{"sku":"SKU-%05d","quantity":%d},{"sku":"SKU-%05d","quantity":%d}]}',
    s1, math.random(1, 3), s2, math.random(1, 3))
  return wrk.format("POST", "/v1/checkout", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[(counter * 2 + tid) % #tokens + 1],
    ["Idempotency-Key"] = prefix .. "-" .. tid .. "-" .. counter,
  }, body)
end
"#;

/// How many customers' tokens wrk takes in turn.
pub const CUSTOMERS: usize = 64;

/// What one wrk slice measured.
#[derive(Debug, Clone, Default)]
pub struct WrkFigures {
    pub requests: u64,
    pub seconds: f64,
    pub non_2xx: u64,
    pub errors: u64,
    /// p50 and p99 in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Where wrk is, if installed.
pub fn find_wrk() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wrk"))
            .find(|p| p.is_file())
    })
}

/// One wrk run against the service: `connections` for `duration`.
#[allow(clippy::too_many_arguments)]
pub async fn wrk(
    wrk: &Path,
    service: &ServiceProcess,
    // Customers' tokens, comma-separated.
    tokens: &str,
    run: &str,
    skus: usize,
    connections: usize,
    duration: Duration,
    postgres: Option<PostgresCpu>,
) -> anyhow::Result<(WrkFigures, CpuReading, CpuReading)> {
    let dir = std::env::temp_dir().join(format!("order-bench-wrk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("checkout.lua");
    std::fs::write(&script, SCRIPT)?;
    let service_pid = i32::try_from(service.pid).ok();
    let read = |client| CpuReading {
        server: service_pid.and_then(process_cpu),
        postgres: postgres.and_then(|p| p.total()),
        client,
    };
    let before = read(Some(Duration::ZERO));
    let child = Command::new(wrk)
        .arg(format!("--connections={connections}"))
        .arg(format!("--threads={}", connections.min(2)))
        .arg(format!("--duration={}s", duration.as_secs().max(1)))
        .arg("--latency")
        .arg(format!("--script={}", script.display()))
        .arg(format!("http://{}", service.address))
        .args(["--", run, tokens, &skus.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", wrk.display()))?;
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    let sampler = sample_until_exit(pid);
    let output = child.wait_with_output().await?;
    let after = read(sampler.await.ok().flatten());
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((parse_wrk(&stdout)?, before, after))
}

fn parse_wrk(text: &str) -> anyhow::Result<WrkFigures> {
    let mut figures = WrkFigures::default();
    let latency = |line: &str| -> Option<f64> {
        let value = line.split_whitespace().nth(1)?;
        let (number, unit) = value.split_at(value.find(|c: char| c.is_ascii_alphabetic())?);
        let number: f64 = number.parse().ok()?;
        Some(match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            "m" => number * 60_000.0,
            _ => return None,
        })
    };
    let mut found = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("50%") {
            figures.p50_ms = latency(line).unwrap_or_default();
        } else if line.starts_with("99%") {
            figures.p99_ms = latency(line).unwrap_or_default();
        } else if let Some(rest) = line.split_once(" requests in ") {
            // "123456 requests in 14.01s, 50.00MB read"
            figures.requests = rest.0.trim().parse().unwrap_or_default();
            figures.seconds = rest
                .1
                .split(',')
                .next()
                .and_then(|s| s.trim().strip_suffix('s'))
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            found = true;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            figures.non_2xx = rest.trim().parse().unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            figures.errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    if !found || figures.seconds <= 0.0 {
        bail!("no request count in wrk's output:\n{text}");
    }
    Ok(figures)
}

impl WrkFigures {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn merge(self, other: WrkFigures) -> WrkFigures {
        if self.requests == 0 {
            return other;
        }
        let weight = |a: f64, b: f64| {
            (a * self.requests as f64 + b * other.requests as f64)
                / (self.requests + other.requests) as f64
        };
        WrkFigures {
            requests: self.requests + other.requests,
            seconds: self.seconds + other.seconds,
            non_2xx: self.non_2xx + other.non_2xx,
            errors: self.errors + other.errors,
            p50_ms: weight(self.p50_ms, other.p50_ms),
            p99_ms: self.p99_ms.max(other.p99_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_wrks_summary() {
        let text = "Running 14s test @ http://127.0.0.1:4000\n\
  2 threads and 64 connections\n\
  Latency Distribution\n\
     50%   23.10ms\n\
     75%   30.00ms\n\
     90%   40.00ms\n\
     99%    1.20s\n\
  36000 requests in 14.00s, 30.00MB read\n\
  Socket errors: connect 0, read 2, write 0, timeout 1\n\
  Non-2xx or 3xx responses: 5\n\
Requests/sec:   2571.43\n";
        let figures = parse_wrk(text).unwrap();
        assert_eq!(figures.requests, 36_000);
        assert!((figures.per_second() - 2571.43).abs() < 0.01);
        assert!((figures.p50_ms - 23.1).abs() < 1e-9);
        assert!((figures.p99_ms - 1200.0).abs() < 1e-9);
        assert_eq!(figures.non_2xx, 5);
        assert_eq!(figures.errors, 3);
        assert!(parse_wrk("wrk: nothing").is_err());
    }
}
