//! A TCP proxy that can lose answers: it forwards a request to the service,
//! lets the service answer (so the order is committed), and cuts the
//! client's connection instead of passing the answer on. What a timeout or
//! a dropped mobile connection looks like to a checkout page.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug)]
pub struct AnswerLosingProxy {
    pub address: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl AnswerLosingProxy {
    /// Proxies to `upstream`; the first `lose` connections get their answer
    /// swallowed and the connection closed.
    pub async fn start(upstream: SocketAddr, lose: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if n < lose {
                        swallow_answer(client, server).await;
                    } else {
                        forward(client, server).await;
                    }
                });
            }
        });
        Self {
            address,
            connections,
        }
    }
}

async fn forward(mut client: TcpStream, mut server: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

async fn swallow_answer(client: TcpStream, server: TcpStream) {
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });
    // Wait for the first bytes of the answer: the service has done the work.
    let mut buffer = [0_u8; 1024];
    let _ = server_read.read(&mut buffer).await;
    upload.abort();
    let mut client_write = client_write;
    let _ = client_write.shutdown().await;
    drop(client_write);
}
