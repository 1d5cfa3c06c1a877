//! The systems under test, as child processes: starting one from the
//! bench, and (for the baselines) serving one inside the child.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    pub pid: u32,
    pub address: SocketAddr,
}

/// Starts this binary again with `args` (the service, or the CRUD
/// baseline) on a free port and waits until it is ready.
pub async fn start(
    args: &[&str],
    database_url: &str,
    secret: &str,
    pool_size: u32,
) -> anyhow::Result<ServiceProcess> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("ORDERS_JWT_SECRET", secret)
        .env("ORDERS_BIND", "127.0.0.1:0")
        .env("ORDERS_DB_POOL_SIZE", pool_size.to_string())
        .env("ORDERS_LOG_FORMAT", "text")
        // One customer places every order of a run and pays none: the
        // bounds on unpaid orders are raised (they are still checked, under
        // the customer's lock, on every checkout).
        .env("ORDERS_UNPAID_ORDERS", u32::MAX.to_string())
        .env("ORDERS_UNPAID_UNITS", u32::MAX.to_string())
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the service")?;
    let pid = child.id().context("the service exited at once")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(at) = line.find("address=") {
                let address = line[at + "address=".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                return Ok::<_, anyhow::Error>(address.parse::<SocketAddr>()?);
            }
        }
        bail!("the service stopped before it listened")
    })
    .await
    .context("the service did not start within 60 s")??;
    // Keep draining its logs so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready = format!("http://{address}/readyz");
    for _ in 0..100 {
        if reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(ServiceProcess {
                child,
                pid,
                address,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the service never became ready")
}

impl ServiceProcess {
    /// The child's peak resident memory so far (Linux).
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    }

    /// SIGTERM (graceful), then SIGKILL if it lingers.
    pub async fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Inside a baseline's child process: reads the service's environment
/// (`DATABASE_URL`, `ORDERS_JWT_SECRET`, `ORDERS_BIND`,
/// `ORDERS_DB_POOL_SIZE`), builds the baseline's routes over its pool, and
/// serves them exactly as the service is served (the same middleware and
/// server: what differs is only what the routes do).
pub async fn serve_baseline(
    routes: impl FnOnce(sqlx::PgPool, order_service::JwtKeys) -> axum::Router,
) -> anyhow::Result<()> {
    order_service::telemetry::init_tracing(order_service::telemetry::LogFormat::Text);
    let env = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let database = order_service::config::DatabaseConfig {
        url: env("DATABASE_URL")?,
        pool_size: env("ORDERS_DB_POOL_SIZE")?.parse()?,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(10),
    };
    let keys = order_service::JwtKeys::new(env("ORDERS_JWT_SECRET")?.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bind: SocketAddr = env("ORDERS_BIND")?.parse()?;
    let routes = routes(database.pool()?, keys);
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(address = %listener.local_addr()?, "serving");
    order_service::serve(
        listener,
        order_service::with_middleware(routes, Duration::from_secs(10)),
        order_service::ServeOptions::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
