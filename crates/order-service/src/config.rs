//! Configuration, read once at start into typed values.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::auth::{JwtKeys, WeakSecret};
use crate::telemetry::LogFormat;

/// Where the database is and how the service may use it.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    /// Most connections the service opens; requests beyond wait.
    pub pool_size: u32,
    /// How long a request waits for a connection before it is answered
    /// 503 with `Retry-After`: short, so overload fails fast.
    pub acquire_timeout: Duration,
    /// Longest a statement may run (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
}

impl DatabaseConfig {
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let millis = self.statement_timeout.as_millis().to_string();
        // A statement, or a transaction left open by a stuck client, can
        // hold the commit-order horizon (the rebuild and the relay wait for
        // it) for at most the request timeout.
        Ok(PgConnectOptions::from_str(&self.url)?
            .application_name("order-service")
            .options([
                ("statement_timeout", millis.as_str()),
                ("idle_in_transaction_session_timeout", millis.as_str()),
            ])
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1))
            .log_statements(tracing::log::LevelFilter::Trace))
    }

    /// A pool that connects lazily: the service starts (and answers /readyz
    /// 503) even while the database is down, and recovers when it is back.
    pub fn pool(&self) -> Result<PgPool, sqlx::Error> {
        Ok(PgPoolOptions::new()
            .max_connections(self.pool_size)
            .acquire_timeout(self.acquire_timeout)
            // A connection broken by a database restart fails its next query
            // (the client retries: every command is idempotent) and is
            // replaced; pinging every checkout out of the pool would cost a
            // round trip per request.
            .test_before_acquire(false)
            .connect_lazy_with(self.connect_options()?))
    }
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub database: DatabaseConfig,
    pub keys: JwtKeys,
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    pub migrate_on_start: bool,
    /// Where migrations run at start, when not over `database.url`.
    pub migration_url: Option<String>,
    pub log_format: LogFormat,
    /// Bounds on slow, idle and too many connections.
    pub connections: crate::ServeOptions,
    /// Most checkouts one customer may abandon per minute.
    pub abandonment_limit: order_store::AbandonmentLimit,
    /// What one customer's unpaid orders may hold.
    pub unpaid_limit: order_store::UnpaidLimit,
    /// When unpaid orders expire, and how often the sweeper looks.
    pub unpaid_expiry: order_store::UnpaidExpiry,
    /// Group commit's writers and batch bound (None: each append alone).
    pub group_commit: Option<order_store::GroupCommitSettings>,
}

impl ServeConfig {
    pub fn jwt_keys(secret: &str) -> Result<JwtKeys, WeakSecret> {
        JwtKeys::new(secret.as_bytes())
    }
}

/// Parses durations the humantime way (`250ms`, `90s`, `15m`, `24h`, `7d`,
/// `1h 30m`); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too large a number of seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 250ms, 90s, 15m, 24h or 7d ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_reads_durations_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5_400)));
        for bad in ["", "h", "5 parsecs", "-1s", "99999999999999999999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
