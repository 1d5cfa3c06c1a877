//! A private NATS server with JetStream for one test (its own port and
//! store directory: tests never share state through the machine's NATS),
//! and the relay as a real process.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::service_process::ANY_PORT;

/// `NATS_SERVER` if set, else `nats-server` on PATH or in /usr/sbin (the
/// test script installs Debian's package where it is missing).
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    store: PathBuf,
    /// The address it listens on (127.0.0.1 unless asked otherwise).
    listen: &'static str,
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with_config(None, "127.0.0.1").await
    }

    /// As [`Self::start`], listening on every address of the host (for a
    /// client in a network namespace); still reached here on 127.0.0.1.
    pub async fn start_on_every_address() -> Self {
        Self::start_with_config(None, "0.0.0.0").await
    }

    /// As [`Self::start`], with the broker's `max_payload` (bytes) set in
    /// a configuration file of its own.
    pub async fn start_with_max_payload(bytes: usize) -> Self {
        Self::start_with_config(Some(format!("max_payload: {bytes}\n")), "127.0.0.1").await
    }

    async fn start_with_config(config: Option<String>, listen: &'static str) -> Self {
        let store = std::env::temp_dir().join(format!(
            "store-orders-nats-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&store).unwrap();
        if let Some(config) = config {
            std::fs::write(store.join("nats.conf"), config).unwrap();
        }
        let mut server = Self {
            child: None,
            port: ANY_PORT,
            store,
            listen,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) with its store: the first time on a port
    /// it picks itself (`-p -1`, read back from the ports file it writes),
    /// so no port is picked here and bound later; after that on the same
    /// port (its clients reconnect to it).
    pub async fn resume(&mut self) {
        let mut command = Command::new(nats_server_binary());
        let config = self.store.join("nats.conf");
        if config.is_file() {
            command.arg("-c").arg(&config);
        }
        let port = if self.port == ANY_PORT {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut child = command
            .args(["-js", "-a", self.listen, "-p", &port])
            .arg("-sd")
            .arg(&self.store)
            .arg("--ports_file_dir")
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts (install Debian's nats-server package)");
        let started = Instant::now();
        if self.port == ANY_PORT {
            let ports = self
                .store
                .join(format!("nats-server_{}.ports", child.id().unwrap_or(0)));
            loop {
                if let Some(port) = std::fs::read_to_string(&ports)
                    .ok()
                    .and_then(|text| port_in_ports_file(&text))
                {
                    self.port = port;
                    break;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("nats-server exited before it listened: {status}");
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "nats-server did not write its ports file {} within 20 s",
                    ports.display()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.child = Some(child);
        let mut last_error = String::new();
        while started.elapsed() < Duration::from_secs(20) {
            match async_nats::connect(self.url()).await {
                Ok(client) => match client.flush().await {
                    Ok(()) => return,
                    Err(e) => last_error = e.to_string(),
                },
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nats-server did not start on port {}: {last_error}",
            self.port
        );
    }

    /// Stops the server abruptly (SIGKILL).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Every message of `stream`, in stream order: (subject, Nats-Msg-Id,
    /// body), read by an ephemeral consumer.
    pub async fn messages(&self, stream: &str) -> Vec<(String, String, Value)> {
        self.read_all(stream, false)
            .await
            .into_iter()
            .map(|message| {
                let body: Value = serde_json::from_slice(&message.payload).unwrap();
                (message.subject.to_string(), message_id(&message), body)
            })
            .collect()
    }

    /// Every message of `stream` as stored, in stream order (headers only
    /// if asked), read by an ephemeral consumer; none if there is no such
    /// stream.
    async fn read_all(&self, stream: &str, headers_only: bool) -> Vec<jetstream::Message> {
        use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
        use futures::StreamExt;
        let client = async_nats::connect(self.url()).await.unwrap();
        let js = jetstream::new(client);
        let Ok(mut stream) = js.get_stream(stream).await else {
            return Vec::new();
        };
        let total = stream.info().await.unwrap().state.messages;
        let mut messages = Vec::new();
        if total == 0 {
            return messages;
        }
        let consumer = stream
            .create_consumer(pull::Config {
                ack_policy: AckPolicy::None,
                deliver_policy: DeliverPolicy::All,
                headers_only,
                ..pull::Config::default()
            })
            .await
            .unwrap();
        let mut batches = consumer.messages().await.unwrap();
        while (messages.len() as u64) < total {
            let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_secs(5), batches.next()).await
            else {
                break;
            };
            messages.push(message.unwrap());
        }
        messages
    }
}

/// A message's `Nats-Msg-Id` (looked up by async-nats' own name for it: by
/// its text it is not found, a standard header).
fn message_id(message: &jetstream::Message) -> String {
    header(message, async_nats::header::NATS_MESSAGE_ID)
}

fn header<K: async_nats::header::IntoHeaderName>(message: &jetstream::Message, name: K) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The client port in nats-server's ports file
/// (`{"nats":["nats://127.0.0.1:PORT"],...}`).
fn port_in_ports_file(text: &str) -> Option<u16> {
    let ports: Value = serde_json::from_str(text).ok()?;
    let url = ports["nats"].get(0)?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl NatsServer {
    /// Every message of `stream`: its id and the commit-order coordinates
    /// its headers carry (`Orders-Transaction-Id`, `Orders-Position`).
    pub async fn message_coordinates(&self, stream: &str) -> Vec<(String, i64, i64)> {
        self.read_all(stream, true)
            .await
            .iter()
            .map(|message| {
                (
                    message_id(message),
                    header(message, "Orders-Transaction-Id")
                        .parse()
                        .unwrap_or(-1),
                    header(message, "Orders-Position").parse().unwrap_or(-1),
                )
            })
            .collect()
    }

    /// Every message of `stream`, in stream order: its stream sequence and
    /// its `Nats-Msg-Id`.
    pub async fn message_sequences(&self, stream: &str) -> Vec<(u64, String)> {
        self.read_all(stream, true)
            .await
            .iter()
            .map(|message| (message.info().unwrap().stream_sequence, message_id(message)))
            .collect()
    }

    /// Deletes the message at `sequence` from `stream`.
    pub async fn delete_message(&self, stream: &str, sequence: u64) {
        let client = async_nats::connect(self.url()).await.unwrap();
        let stream = jetstream::new(client).get_stream(stream).await.unwrap();
        stream.delete_message(sequence).await.unwrap();
    }

    /// Deletes `stream` (as an operator might).
    pub async fn delete_stream(&self, stream: &str) {
        let client = async_nats::connect(self.url()).await.unwrap();
        jetstream::new(client).delete_stream(stream).await.unwrap();
    }

    /// Whether `stream` exists.
    pub async fn has_stream(&self, stream: &str) -> bool {
        let client = async_nats::connect(self.url()).await.unwrap();
        jetstream::new(client).get_stream(stream).await.is_ok()
    }

    /// The message ids (`Nats-Msg-Id`) `stream` holds.
    pub async fn message_ids(&self, stream: &str) -> HashSet<String> {
        self.messages(stream)
            .await
            .into_iter()
            .map(|(_, id, _)| id)
            .collect()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// `order-service relay` as a process, its log kept in a file of its own
/// (removed with it) so that a failing test can show what the relay did.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    status_host: String,
    pub status_port: u16,
    log: PathBuf,
}

impl RelayProcess {
    /// Starts `binary relay` (the test's `CARGO_BIN_EXE_order-service-under-test`).
    pub async fn start(binary: &str, database_url: &str, nats_url: &str, stream: &str) -> Self {
        Self::start_with(binary, database_url, nats_url, stream, &[]).await
    }

    /// As [`Self::start`], with more environment (`ORDERS_RELAY_BATCH`...).
    pub async fn start_with(
        binary: &str,
        database_url: &str,
        nats_url: &str,
        stream: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .arg("relay")
            // Port 0: the relay binds a free port itself and logs it (a
            // port picked here and bound there could be taken between).
            .env("ORDERS_RELAY_BIND", "127.0.0.1:0");
        Self::spawn(command, "127.0.0.1", database_url, nats_url, stream, env).await
    }

    /// As [`Self::start_with`], in `namespace` (its /readyz reached at the
    /// namespace's address): a relay whose host can be cut off.
    pub async fn start_in(
        namespace: &crate::network_namespace::NetworkNamespace,
        binary: &str,
        database_url: &str,
        nats_url: &str,
        stream: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = namespace.command(binary);
        command.arg("relay").env("ORDERS_RELAY_BIND", "0.0.0.0:0");
        let host = namespace.inside_address.to_string();
        Self::spawn(command, &host, database_url, nats_url, stream, env).await
    }

    async fn spawn(
        mut command: Command,
        status_host: &str,
        database_url: &str,
        nats_url: &str,
        stream: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let log = std::env::temp_dir().join(format!(
            "store-orders-relay-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let stderr = std::fs::File::create(&log).unwrap();
        let child = command
            .env("DATABASE_URL", database_url)
            .env("NATS_URL", nats_url)
            .env("ORDERS_RELAY_STREAM", stream)
            .env("RUST_LOG", "info,sqlx=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("the relay starts");
        let mut relay = Self {
            child,
            status_host: status_host.to_owned(),
            status_port: 0,
            log,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(port) = relay.logged_status_port() {
                relay.status_port = port;
                return relay;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the relay did not say where it serves /readyz within 30 s:\n{}",
            relay.log()
        );
    }

    /// The port of `/readyz` as the relay logged it ("relay status on
    /// /readyz and /metrics address=127.0.0.1:PORT").
    fn logged_status_port(&self) -> Option<u16> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("relay status on"))?;
        let address = line.split("address=").nth(1)?.split_whitespace().next()?;
        address
            .parse::<std::net::SocketAddr>()
            .ok()
            .map(|a| a.port())
    }

    /// `/metrics` of the relay.
    pub async fn metrics(&self) -> String {
        order_client::install_tls_provider();
        reqwest::get(format!(
            "http://{}:{}/metrics",
            self.status_host, self.status_port
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
    }

    /// Its exit status, if it exits within `limit`.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Everything the relay logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines the relay logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `/readyz` of the relay, once it answers.
    pub async fn readiness(&self) -> Option<(u16, Value)> {
        order_client::install_tls_provider();
        let response = reqwest::get(format!(
            "http://{}:{}/readyz",
            self.status_host, self.status_port
        ))
        .await
        .ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Waits until `condition` holds, polling, or panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

/// Every event of the store: its message id as the relay names it.
pub async fn stored_event_ids(pool: &sqlx::PgPool) -> Vec<String> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT tenant_id, aggregate_type, aggregate_id, sequence FROM events ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(tenant, kind, id, sequence)| {
            let kind = match kind.as_str() {
                "Order" => "order",
                "Product" => "product",
                "StockAdjustment" => "stock_adjustment",
                other => panic!("unknown aggregate type {other}"),
            };
            format!("{tenant}/{kind}/{id}/{sequence}")
        })
        .collect()
}

/// Exactly one message per stored event, and within each stream the
/// messages in sequence order.
pub fn assert_one_message_per_event_in_stream_order(
    events: &[String],
    messages: &[(String, String, Value)],
) {
    let ids: Vec<&str> = messages.iter().map(|(_, id, _)| id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a duplicate message in the stream");
    let expected: HashSet<&str> = events.iter().map(String::as_str).collect();
    assert_eq!(unique, expected, "the stream differs from the events");
    let mut last_sequence: BTreeMap<String, i64> = BTreeMap::new();
    for (subject, id, body) in messages {
        let stream = format!("{}/{}", body["aggregate_type"], body["aggregate_id"]);
        let sequence = body["sequence"].as_i64().unwrap();
        let previous = last_sequence.insert(stream.clone(), sequence).unwrap_or(0);
        assert_eq!(sequence, previous + 1, "{stream}: {id} out of order");
        assert!(subject.starts_with("orders."), "{subject}");
        assert_eq!(
            subject.split('.').nth(1),
            body["tenant"].as_str(),
            "{subject}"
        );
    }
}

/// Waits until `stream` holds as many messages as the store has events,
/// then asserts one message per event, each stream in order; answers how
/// many events and messages there are. Gives up when a minute passes
/// without a new message (a stuck relay), or after five minutes in all: a
/// slow relay on a loaded machine is not a stuck one (a cluster's reads
/// take several round trips each). On giving up it says what is missing,
/// what `relay` reports and what it logged.
pub async fn every_event_published_once(
    nats: &NatsServer,
    stream: &str,
    pool: &sqlx::PgPool,
    relay: &RelayProcess,
) -> (usize, usize) {
    let events = stored_event_ids(pool).await;
    let (stalled, overall) = (Duration::from_secs(60), Duration::from_secs(300));
    let started = Instant::now();
    let mut progressed = Instant::now();
    let mut messages = nats.messages(stream).await;
    while messages.len() < events.len() {
        if progressed.elapsed() > stalled || started.elapsed() > overall {
            let published: HashSet<&str> = messages.iter().map(|(_, id, _)| id.as_str()).collect();
            let missing: Vec<&String> = events
                .iter()
                .filter(|id| !published.contains(id.as_str()))
                .take(5)
                .collect();
            panic!(
                "every event published: not after {:?} ({:?} without a new message): \
                 {} events, {} messages, missing (first 5) {missing:?}\n\
                 relay /readyz: {:?}\nrelay log:\n{}",
                started.elapsed(),
                progressed.elapsed(),
                events.len(),
                messages.len(),
                relay.readiness().await,
                relay.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = nats.messages(stream).await;
        if now.len() > messages.len() {
            progressed = Instant::now();
        }
        messages = now;
    }
    eprintln!(
        "{} events published in {:.1} s",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    assert_one_message_per_event_in_stream_order(&events, &messages);
    (events.len(), messages.len())
}
