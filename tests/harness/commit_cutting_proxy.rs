//! A TCP proxy between the service and PostgreSQL that cuts a connection
//! right after a commit, before the service hears of it. It reads the
//! service's messages: when a statement whose text contains the trigger is
//! prepared (Parse), it remembers the statement's name; when that statement
//! is executed (Bind), it follows the server's answer, passes on nothing
//! from its CommandComplete on, and at the next ReadyForQuery (the implicit
//! transaction is over: committed) closes both sides. One shot. Needs the
//! connection in the clear (no TLS).
//!
//! Started with [`CommitCuttingProxy::start_losing_statement`], it cuts
//! before the statement instead: its Bind is never passed on (the statement
//! never runs), both sides are closed, and new connections are refused for
//! the outage's duration, as if PostgreSQL went down just then.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct CommitCuttingProxy {
    pub address: SocketAddr,
    pub armed: Arc<AtomicBool>,
    pub cuts: Arc<AtomicUsize>,
    /// Cut before the trigger statement runs, then refuse connections this
    /// long (None: cut after its commit).
    outage: Option<Duration>,
    down_until: Arc<Mutex<Option<Instant>>>,
}

impl CommitCuttingProxy {
    pub async fn start(upstream: SocketAddr, trigger: &'static [u8]) -> Self {
        Self::start_with(upstream, trigger, None).await
    }

    /// Cuts the connection that is about to run the trigger statement
    /// before it runs, then refuses connections for `outage`.
    pub async fn start_losing_statement(
        upstream: SocketAddr,
        trigger: &'static [u8],
        outage: Duration,
    ) -> Self {
        Self::start_with(upstream, trigger, Some(outage)).await
    }

    async fn start_with(
        upstream: SocketAddr,
        trigger: &'static [u8],
        outage: Option<Duration>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Self {
            address: listener.local_addr().unwrap(),
            armed: Arc::new(AtomicBool::new(true)),
            cuts: Arc::new(AtomicUsize::new(0)),
            outage,
            down_until: Arc::default(),
        };
        let shared = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let down = shared
                    .down_until
                    .lock()
                    .unwrap()
                    .is_some_and(|until| Instant::now() < until);
                if down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(shared.clone().relay(client, server, trigger));
            }
        });
        proxy
    }

    async fn relay(self, client: TcpStream, server: TcpStream, trigger: &'static [u8]) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let cut_next_answer = Arc::new(AtomicBool::new(false));
        let flag = cut_next_answer.clone();
        let armed = self.armed.clone();
        let (outage, down_until, cuts) = (self.outage, self.down_until.clone(), self.cuts.clone());
        let upload = tokio::spawn(async move {
            let mut buffer = vec![0_u8; 64 * 1024];
            let mut pending: Vec<u8> = Vec::new();
            let mut started = false;
            let mut statement: Option<Vec<u8>> = None;
            loop {
                let n = match client_read.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buffer[..n]);
                loop {
                    // The startup message has no type byte; every later one has.
                    let length = if started {
                        next_message(&pending)
                    } else {
                        untyped_message(&pending)
                    };
                    let Some(length) = length else { break };
                    let message = &pending[..length];
                    if !started {
                        started = true;
                    } else if message[0] == b'P' {
                        let (name, rest) = cstring(&message[5..]);
                        let (query, _) = cstring(rest);
                        if query.windows(trigger.len()).any(|w| w == trigger) {
                            statement = Some(name.to_vec());
                        }
                    } else if message[0] == b'B' {
                        let (_portal, rest) = cstring(&message[5..]);
                        let (name, _) = cstring(rest);
                        if statement.as_deref() == Some(name) && armed.swap(false, Ordering::SeqCst)
                        {
                            if let Some(outage) = outage {
                                // Not passed on: the statement never runs.
                                // Dropping the server's half ends the session
                                // (and so the rest of this connection).
                                *down_until.lock().unwrap() = Some(Instant::now() + outage);
                                cuts.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            // Set before forwarding: the answer cannot overtake it.
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                    if server_write.write_all(&pending[..length]).await.is_err() {
                        return;
                    }
                    pending.drain(..length);
                }
            }
        });
        let mut buffer = vec![0_u8; 64 * 1024];
        // Once flagged: bytes not yet passed on, from a message boundary.
        let mut pending: Vec<u8> = Vec::new();
        let mut completed = false;
        'relay: loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !cut_next_answer.load(Ordering::SeqCst) {
                if client_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
                continue;
            }
            pending.extend_from_slice(&buffer[..n]);
            while let Some(length) = next_message(&pending) {
                let kind = pending[0];
                if kind == b'C' {
                    completed = true;
                }
                if completed {
                    if kind == b'Z' {
                        self.cuts.fetch_add(1, Ordering::SeqCst);
                        break 'relay;
                    }
                    // Held: the service never hears the outcome.
                    pending.drain(..length);
                    continue;
                }
                if client_write.write_all(&pending[..length]).await.is_err() {
                    break 'relay;
                }
                pending.drain(..length);
            }
        }
        upload.abort();
        let _ = client_write.shutdown().await;
    }
}

/// The length of the complete server message at the start of `bytes`
/// (type byte, then a length that counts itself), if it is all there.
fn next_message(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 5 {
        return None;
    }
    let length = 1 + u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    (bytes.len() >= length).then_some(length)
}

/// The length of a message without a type byte (the startup message).
fn untyped_message(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 4 {
        return None;
    }
    let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    (bytes.len() >= length).then_some(length)
}

/// A NUL-terminated string and what follows it.
fn cstring(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|b| *b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}
