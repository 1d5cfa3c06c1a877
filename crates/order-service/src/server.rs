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
//!   once a second) until an open one finishes or times out;
//! - an answer that cannot be written for [`ServeOptions::write_timeout`]
//!   (the client does not read: it pipelines requests and never takes the
//!   answers, or it is gone without a word) closes the connection;
//! - at most [`ServeOptions::max_requests_per_connection`] requests are
//!   answered on one connection: the last answer says `Connection: close`,
//!   and requests pipelined after it are not read.
//!
//! HTTP/1.1 only (what every client of this API speaks); on shutdown, the
//! listener closes, and in-flight requests finish on their connections.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connection bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Longest wait for a request head: the time a client has to send its
    /// request line and headers, and the longest a kept-alive connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest a write to a client may make no progress.
    pub write_timeout: Duration,
    /// Most requests answered on one connection (pipelined or not).
    pub max_requests_per_connection: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1_000,
            write_timeout: Duration::from_secs(10),
            max_requests_per_connection: 1_000,
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
        let stream = WriteDeadline::new(stream, options.write_timeout);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .serve_connection(
                TokioIo::new(stream),
                counted(app.clone(), options.max_requests_per_connection),
            );
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

/// `app` for one connection: the answer to its `most`-th request says
/// `Connection: close` (hyper then closes the connection once it is
/// written, and reads no request pipelined after it).
fn counted(
    app: Router,
    most: usize,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    let most = most.max(1);
    let answered = Arc::new(AtomicUsize::new(0));
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let last = answered.fetch_add(1, Ordering::Relaxed) + 1 >= most;
        let app = app.clone();
        async move {
            let mut response = app.oneshot(request).await?;
            if last {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    })
}

/// A client connection whose writes fail with `TimedOut` once they have
/// made no progress for `limit`: the timer starts when a write (or flush)
/// must wait for the client to read, and any progress resets it.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.stalled = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no answer within the write timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, polled)
    }
}
