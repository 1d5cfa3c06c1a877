//! The service as a real process: started from the binary, killed with
//! SIGKILL, restarted on the same port.
//!
//! Started on [`ANY_PORT`], the process binds a port of its own choosing
//! (port 0) and the harness reads the address from its log: no port is
//! picked here and bound later by another process (a race with anything
//! else on the machine).

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::app::SECRET;

/// Let the service bind a port of its choosing (read back from its log).
pub const ANY_PORT: u16 = 0;

/// A port nobody listens on right now (for an address that must refuse
/// connections; a process to be started should get [`ANY_PORT`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    pub port: u16,
    pub pid: u32,
    log: std::path::PathBuf,
}

impl ServiceProcess {
    /// Starts `binary serve` on `port` ([`ANY_PORT`]: one the process
    /// picks) against `database_url`, with extra environment, and waits
    /// until /healthz answers.
    pub async fn start(binary: &str, database_url: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "store-orders-service-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("ORDERS_JWT_SECRET", SECRET)
            .env("ORDERS_BIND", format!("127.0.0.1:{port}"))
            // Raised as for the in-process app (app.rs, STORM_UNPAID_LIMIT);
            // `env` may set others.
            .env(
                "ORDERS_UNPAID_ORDERS",
                crate::STORM_UNPAID_LIMIT.orders.to_string(),
            )
            .env(
                "ORDERS_UNPAID_UNITS",
                crate::STORM_UNPAID_LIMIT.units.to_string(),
            )
            // Warnings, and the line that says which address it serves on.
            .env("RUST_LOG", "warn,order_service::cli=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("the service binary starts");
        let pid = child.id().unwrap();
        let started = Instant::now();
        let port = if port == ANY_PORT {
            bound_port(&log, started).await
        } else {
            port
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        order_client::install_tls_provider();
        let http = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(30) {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Self {
                    child,
                    port,
                    pid,
                    log,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the service did not answer /healthz within 30 s; it said:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM: the graceful shutdown (stop accepting, drain).
    pub async fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
    }

    /// Waits for the process to exit.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        self.child.wait().await.unwrap()
    }

    /// SIGKILL: no drain, no goodbye.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Whether the process is still running (not restarted, not crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The port the service's log says it serves on ("serving
/// address=127.0.0.1:PORT"), waiting up to 30 s from `started` for it.
async fn bound_port(log: &std::path::Path, started: Instant) -> u16 {
    loop {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        let port = said
            .split("serving address=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok());
        if let Some(port) = port {
            return port;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not say where it serves within 30 s; it said:\n{said}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}
