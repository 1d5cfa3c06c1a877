//! The HTTP server: accepting connections with bounds a hostile client
//! cannot stretch.
//!
//! `axum::serve` keeps a connection as long as the client keeps it: one that
//! sends half a request, or a header line now and then, or nothing after a
//! response, holds a file descriptor and memory forever, and a few thousand
//! of them starve the process. Here, per connection:
//! - the request head must arrive within [`ServeOptions::header_timeout`],
//!   and the same timer bounds an idle keep-alive connection waiting for its
//!   next request (hyper runs it whenever it waits for a request head);
//! - at most [`ServeOptions::max_connections`] are open at once; past that,
//!   new ones wait in the kernel's accept queue (a log line says so, at most
//!   once a second) until an open one finishes or times out.
//!
//! HTTP/1.1 only (what every client of this API speaks); on shutdown, the
//! listener closes, and in-flight requests finish on their connections.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connection bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Longest wait for a request head: the time a client has to send its
    /// request line and headers, and the longest a kept-alive connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1_000,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops
/// accepting and waits for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut last_warning: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        if slots.available_permits() == 0
            && last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            tracing::warn!(
                max_connections = options.max_connections,
                "connection limit reached: new connections wait until one closes"
            );
            last_warning = Some(Instant::now());
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
