//! An HTTP/1.1 proxy between a browser and the service that can lose or hold
//! checkout answers: what a flaky mobile connection does to a checkout page.
//!
//! It forwards every request as it is (one upstream connection per request,
//! `Connection: close` upstream), and for `POST /v1/checkout`:
//! - the first `lose_checkouts` are sent to the service, which answers (the
//!   order is committed), and then the browser's connection is closed
//!   without the answer;
//! - every checkout answer is held back `hold_checkouts` before it is
//!   passed on (a slow network, to reload the page while it is in flight);
//! - the first `unavailable_checkouts` are answered 503 by the proxy;
//! - every checkout request is held `delay_checkouts` before it is sent on
//!   (a request stuck in a slow network, still to arrive);
//! - with `down_after_lost`, the proxy goes down once it has lost an answer:
//!   every connection is closed unanswered until the test sets
//!   [`CheckoutProxy::down`] back to false (the shop unreachable).
//!
//! It understands just enough HTTP for a browser talking to this service:
//! request heads, `Content-Length` bodies (no chunked requests), answers
//! read to the end of the upstream connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
pub struct CheckoutProxy {
    pub address: SocketAddr,
    /// Checkout requests seen so far.
    pub checkouts: Arc<AtomicUsize>,
    /// Checkout answers swallowed so far.
    pub lost: Arc<AtomicUsize>,
    /// The Idempotency-Key of each checkout request, in arrival order.
    pub keys: Arc<Mutex<Vec<String>>>,
    /// While true, every connection is closed without an answer.
    pub down: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub lose_checkouts: usize,
    pub hold_checkouts: Duration,
    /// The first this many checkouts are answered 503 by the proxy itself
    /// (an overloaded gateway), never reaching the service.
    pub unavailable_checkouts: usize,
    /// Every checkout request waits this long before it is sent on.
    pub delay_checkouts: Duration,
    /// Go down (see [`CheckoutProxy::down`]) after losing an answer.
    pub down_after_lost: bool,
}

impl CheckoutProxy {
    pub async fn start(upstream: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let checkouts = Arc::new(AtomicUsize::new(0));
        let lost = Arc::new(AtomicUsize::new(0));
        let keys = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let seen = Seen {
            checkouts: checkouts.clone(),
            lost: lost.clone(),
            keys: keys.clone(),
            down: down.clone(),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, faults, seen).await;
                });
            }
        });
        Self {
            address,
            checkouts,
            lost,
            keys,
            down,
        }
    }

    /// Brings the proxy back up after `down_after_lost` took it down.
    pub fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// The keys the checkout requests carried so far.
    pub fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

#[derive(Debug, Clone)]
struct Seen {
    checkouts: Arc<AtomicUsize>,
    lost: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

/// One browser connection, one request: the upstream's answer ends with its
/// connection (`Connection: close`), and so does the browser's.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    faults: Faults,
    seen: Seen,
) -> std::io::Result<()> {
    if seen.down.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut buffer = Vec::new();
    let Some((head, body)) = read_request(&mut client, &mut buffer).await? else {
        return Ok(());
    };
    if seen.down.load(Ordering::SeqCst) {
        return Ok(());
    }
    let checkout = head.starts_with("POST /v1/checkout ").then(|| {
        if let Some(key) = header(&head, "idempotency-key") {
            seen.keys.lock().unwrap().push(key.to_owned());
        }
        seen.checkouts.fetch_add(1, Ordering::SeqCst)
    });
    if checkout.is_some_and(|n| n < faults.unavailable_checkouts) {
        let body = r#"{"type":"about:blank","title":"Service Unavailable","status":503}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        return client.write_all(answer.as_bytes()).await;
    }
    if checkout.is_some() {
        tokio::time::sleep(faults.delay_checkouts).await;
    }
    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(close_after_answer(&head).as_bytes())
        .await?;
    server.write_all(&body).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    if let Some(n) = checkout {
        tokio::time::sleep(faults.hold_checkouts).await;
        if n < faults.lose_checkouts {
            seen.lost.fetch_add(1, Ordering::SeqCst);
            if faults.down_after_lost {
                seen.down.store(true, Ordering::SeqCst);
            }
            // Committed upstream; the browser never hears of it.
            return Ok(());
        }
    }
    client.write_all(&answer).await
}

/// The request head (text) and body, or None at the end of the connection.
async fn read_request(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length = header(&head, "content-length")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < end + length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[end..end + length].to_vec();
    buffer.drain(..end + length);
    Ok(Some((head, body)))
}

/// The head with `Connection: close`, so the answer ends with the
/// connection.
fn close_after_answer(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        })
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A header's value in a request head (the first, trimmed).
fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field
            .trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}
