use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// When and how often a request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most requests in all (the first one included).
    pub max_attempts: u32,
    /// The first backoff's cap; each retry doubles it...
    pub base_delay: Duration,
    /// ...up to this.
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
    /// Each request's own timeout.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_total: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// 429 and 5xx may succeed later; any other answer is final.
    pub fn retries_status(status: StatusCode) -> bool {
        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
    }

    pub(crate) fn schedule(&self) -> Schedule {
        Schedule {
            policy: self.clone(),
            started: Instant::now(),
            attempts: 1,
        }
    }

    /// Full jitter: a uniformly random wait between zero and the capped
    /// exponential backoff of retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let cap = self
            .base_delay
            .saturating_mul(1_u32 << exponent)
            .min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// The retries of one call.
#[derive(Debug)]
pub(crate) struct Schedule {
    policy: RetryPolicy,
    started: Instant,
    attempts: u32,
}

impl Schedule {
    /// The number of the attempt under way (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt, or None when the policy says stop.
    /// A server's `Retry-After` is honoured, within `max_delay`.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let backoff = self.policy.backoff(self.attempts);
        let delay = match retry_after {
            Some(server) => server.min(self.policy.max_delay).max(backoff),
            None => backoff,
        };
        if self.started.elapsed() + delay > self.policy.max_total {
            return None;
        }
        self.attempts += 1;
        Some(delay)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_retries_server_errors_and_429_but_never_other_client_errors() {
        for status in [500, 502, 503, 504, 429] {
            assert!(
                RetryPolicy::retries_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 413, 422] {
            assert!(
                !RetryPolicy::retries_status(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
    }

    #[test]
    fn its_backoff_is_jittered_below_a_doubling_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..=10 {
            let cap = (policy.base_delay * (1 << (retry - 1))).min(policy.max_delay);
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= cap);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(5)).collect();
        assert!(spread.len() > 10, "full jitter spreads the waits");
    }

    #[test]
    fn it_stops_after_max_attempts() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut schedule = policy.schedule();
        assert!(schedule.next_delay(None).is_some());
        assert!(schedule.next_delay(None).is_some());
        assert_eq!(schedule.next_delay(None), None);
        assert_eq!(schedule.attempt(), 3);
    }

    #[test]
    fn it_stops_when_the_next_wait_would_pass_the_total_budget() {
        let policy = RetryPolicy {
            max_total: Duration::from_millis(10),
            base_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let mut schedule = policy.schedule();
        // The server asks for 5 s: past the 10 ms budget.
        assert_eq!(schedule.next_delay(Some(Duration::from_secs(5))), None);
    }

    #[test]
    fn it_reads_retry_after_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
