//! CPU time from `/proc`: of one process (the service under test, a
//! baseline, the load generator) and of PostgreSQL as a whole.
//!
//! On two shared cores, CPU is throughput: CPU per order says what an order
//! costs whatever else the machine was doing.
//!
//! PostgreSQL runs a process per connection, and connections come and go
//! (pgbench opens its own), so "PostgreSQL's CPU" is the postmaster's own
//! time, plus what its exited children used (`cutime`/`cstime`, which the
//! kernel adds to a parent when it reaps a child), plus what its live
//! children used so far. The difference of two such readings is everything
//! PostgreSQL spent in between. It needs the server on this machine; for a
//! remote server the figures are left out.

use std::time::Duration;

use procfs::process::{all_processes, Process};

/// Total user + system CPU time of `pid` so far.
pub fn process_cpu(pid: i32) -> Option<Duration> {
    let stat = Process::new(pid).ok()?.stat().ok()?;
    Some(ticks(stat.utime + stat.stime))
}

/// A child's CPU time, sampled every 50 ms while it runs (it is gone once
/// it exits): the last reading, for a load generator we start and wait for.
pub fn sample_until_exit(pid: Option<i32>) -> tokio::task::JoinHandle<Option<Duration>> {
    tokio::spawn(async move {
        let mut last = None;
        while let Some(cpu) = pid.and_then(process_cpu) {
            last = Some(cpu);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    })
}

/// This process's own CPU time so far (the load generator).
pub fn own_cpu() -> Option<Duration> {
    process_cpu(std::process::id().try_into().ok()?)
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / procfs::ticks_per_second() as f64)
}

/// The local PostgreSQL server, by its postmaster's pid.
#[derive(Debug, Clone, Copy)]
pub struct PostgresCpu {
    postmaster: i32,
}

impl PostgresCpu {
    /// Finds the postmaster: the parent of the backend serving `pool`.
    pub async fn find(pool: &sqlx::PgPool) -> Option<Self> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(pool)
            .await
            .ok()?;
        let postmaster = Process::new(backend).ok()?.stat().ok()?.ppid;
        let name = Process::new(postmaster).ok()?.stat().ok()?.comm;
        (name.starts_with("postgres") || name.starts_with("postmaster"))
            .then_some(Self { postmaster })
    }

    /// Everything the server has used so far (see the module's doc).
    pub fn total(&self) -> Option<Duration> {
        let own = Process::new(self.postmaster).ok()?.stat().ok()?;
        let reaped = u64::try_from(own.cutime + own.cstime).unwrap_or(0);
        let mut sum = own.utime + own.stime + reaped;
        for process in all_processes().ok()?.flatten() {
            if let Ok(stat) = process.stat() {
                if stat.ppid == self.postmaster {
                    sum += stat.utime + stat.stime;
                }
            }
        }
        Some(ticks(sum))
    }
}

/// CPU readings of the processes in a measurement, taken before and after.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuReading {
    /// The process serving the requests (none for pgbench).
    pub server: Option<Duration>,
    pub postgres: Option<Duration>,
    /// The load generator.
    pub client: Option<Duration>,
}

/// CPU used by each process over one or more measured spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    pub server: Option<Duration>,
    pub postgres: Option<Duration>,
    pub client: Option<Duration>,
}

/// CPU used per operation, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuPerOperation {
    pub server_ms: Option<f64>,
    pub postgres_ms: Option<f64>,
    pub client_ms: Option<f64>,
}

impl CpuReading {
    /// What each process used between `before` and this reading.
    pub fn since(&self, before: &CpuReading) -> CpuSpent {
        let spent = |after: Option<Duration>, before: Option<Duration>| after?.checked_sub(before?);
        CpuSpent {
            server: spent(self.server, before.server),
            postgres: spent(self.postgres, before.postgres),
            client: spent(self.client, before.client),
        }
    }
}

impl CpuSpent {
    /// The sum of two measured spans (a figure missing in either is missing).
    pub fn add(&self, other: &CpuSpent) -> CpuSpent {
        let sum = |a: Option<Duration>, b: Option<Duration>| Some(a? + b?);
        CpuSpent {
            server: sum(self.server, other.server),
            postgres: sum(self.postgres, other.postgres),
            client: sum(self.client, other.client),
        }
    }

    pub fn per_operation(&self, operations: u64) -> CpuPerOperation {
        let per = |spent: Option<Duration>| {
            (operations > 0).then(|| spent.map(|s| s.as_secs_f64() * 1000.0 / operations as f64))?
        };
        CpuPerOperation {
            server_ms: per(self.server),
            postgres_ms: per(self.postgres),
            client_ms: per(self.client),
        }
    }
}
