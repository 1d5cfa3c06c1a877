//! A closed-loop load generator: `concurrency` workers, each sending its
//! next request when the previous one is answered, for a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The expected answer (e.g. 201 for a new order).
    Ok,
    /// Any other answer, or no answer.
    Failed,
}

/// The figures of one scenario at one concurrency.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub completed: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Sorted latencies of the successful requests.
    latencies: Vec<Duration>,
}

impl Figures {
    pub fn new(mut latencies: Vec<Duration>, failed: u64, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            completed: latencies.len() as u64,
            failed,
            elapsed,
            latencies,
        }
    }

    /// The figures of two runs of the same scenario, as one.
    pub fn merge(self, other: Figures) -> Figures {
        let mut latencies = self.latencies;
        latencies.extend(other.latencies);
        Figures::new(
            latencies,
            self.failed + other.failed,
            self.elapsed + other.elapsed,
        )
    }

    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// The `q`-quantile latency (0 < q <= 1), nearest rank.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    pub fn ms(&self, q: f64) -> f64 {
        self.quantile(q).as_secs_f64() * 1000.0
    }
}

/// Runs `request(worker, n)` from `concurrency` workers for `duration`.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                let mut failed = 0_u64;
                let mut n = 0_u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match request(worker, n).await {
                        Outcome::Ok => latencies.push(sent.elapsed()),
                        Outcome::Failed => failed += 1,
                    }
                    n += 1;
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for worker in workers {
        if let Ok((mine, lost)) = worker.await {
            latencies.extend(mine);
            failed += lost;
        }
    }
    Figures::new(latencies, failed, started.elapsed())
}
