//! `order-bench relay`: the outbox relay publishing a recorded history.
//!
//! 1. A fresh database with a synthetic history of `--events` events (the
//!    rebuild's generator: every event from the domain's own `decide`).
//! 2. A private nats-server with JetStream (own port, own store directory).
//! 3. Baseline, in the same run: the same number of messages of the same
//!    size published by a bare async-nats loop (pipelined batches of 1,000,
//!    message ids, no database): the broker's floor.
//! 4. The real relay (`order-service relay`, this binary re-executed) from
//!    an empty checkpoint until the stream holds every event: events/s,
//!    its peak RSS, and CPU per event of the relay, PostgreSQL and
//!    nats-server.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream;
use async_nats::jetstream::context::Publish;
use futures::future::join_all;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::{Child, Command};

use crate::cpu::{process_cpu, CpuReading, PostgresCpu};

/// What the relay bench was asked for.
#[derive(Debug, Clone)]
pub struct RelayBench {
    pub events: u64,
    pub service_arg: &'static str,
}

struct Nats {
    child: Child,
    store: PathBuf,
    url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

async fn start_nats() -> anyhow::Result<Nats> {
    let store = std::env::temp_dir().join(format!("order-bench-nats-{}", std::process::id()));
    std::fs::create_dir_all(&store)?;
    let binary = std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            [
                "/usr/bin/nats-server",
                "/usr/sbin/nats-server",
                "/usr/local/bin/nats-server",
            ]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        })
        .context("no nats-server: install Debian's nats-server package (scripts/test does)")?;
    // `-p -1`: the server binds a port of its own and writes it to its
    // ports file (a port picked here could be taken before it binds it).
    let mut child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(&store)
        .arg("--ports_file_dir")
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nats-server")?;
    let ports = store.join(format!(
        "nats-server_{}.ports",
        child.id().context("nats-server exited at once")?
    ));
    let mut port = None;
    for _ in 0..400 {
        port = std::fs::read_to_string(&ports)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|ports| {
                let url = ports["nats"].get(0)?.as_str()?.to_owned();
                url.rsplit(':').next()?.parse::<u16>().ok()
            });
        if port.is_some() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited before it listened: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let port = port.context("nats-server did not write its ports file within 20 s")?;
    let url = format!("nats://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(client) = async_nats::connect(&url).await {
            if client.flush().await.is_ok() {
                return Ok(Nats { child, store, url });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nats-server did not start")
}

async fn stream_messages(url: &str, stream: &str) -> anyhow::Result<u64> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    match js.get_stream(stream).await {
        Ok(mut stream) => Ok(stream.info().await?.state.messages),
        Err(_) => Ok(0),
    }
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

pub async fn run(bench: &RelayBench, admin: &PgConnectOptions, url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(admin.clone())
        .await?;
    order_store::MIGRATOR.run(&pool).await?;
    let generated = Instant::now();
    let history = rebuild_projections::synthetic_history::generate(
        &pool,
        &rebuild_projections::synthetic_history::HistorySpec {
            events: bench.events,
            ..Default::default()
        },
    )
    .await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    let average_payload: f64 = sqlx::query_scalar(
        "SELECT avg(length(payload::text) + length(metadata::text))::float8 FROM events",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "history: {events} events ({} orders) written in {:.1} s; payload + metadata {:.0} bytes on average",
        history.orders,
        generated.elapsed().as_secs_f64(),
        average_payload
    );
    let nats = start_nats().await?;
    let postgres = PostgresCpu::find(&pool).await;

    // Baseline: the broker's floor, same count, same size, no database.
    let baseline = {
        let client = async_nats::connect(&nats.url).await?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: "BASELINE".into(),
            subjects: vec!["baseline.>".into()],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let body = bytes::Bytes::from(vec![b'x'; average_payload as usize + 250]);
        let started = Instant::now();
        let mut sent = 0u64;
        while sent < events as u64 {
            let mut acks = Vec::with_capacity(1000);
            for _ in 0..1000.min(events as u64 - sent) {
                acks.push(
                    js.send_publish(
                        format!("baseline.t.order.E{}", sent % 7),
                        Publish::build()
                            .payload(body.clone())
                            .message_id(format!("b/{sent}")),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                );
                sent += 1;
            }
            for ack in join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
                ack.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
        sent as f64 / started.elapsed().as_secs_f64()
    };

    // The relay.
    let nats_pid = nats.child.id().and_then(|p| i32::try_from(p).ok());
    let before = CpuReading {
        server: None,
        postgres: postgres.and_then(|p| p.total()),
        client: nats_pid.and_then(process_cpu),
    };
    let started = Instant::now();
    let mut relay = Command::new(std::env::current_exe()?)
        .args([bench.service_arg, "relay"])
        .env("DATABASE_URL", url)
        .env("NATS_URL", &nats.url)
        // Nothing here reads its status port: one of its own choosing.
        .env("ORDERS_RELAY_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the relay")?;
    let pid = relay.id().context("the relay exited at once")?;
    let mut relay_cpu = None;
    loop {
        if stream_messages(&nats.url, "ORDER_EVENTS").await? >= events as u64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the relay did not publish {events} events within 10 minutes");
        }
        relay_cpu = process_cpu(i32::try_from(pid).unwrap_or(0)).or(relay_cpu);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    relay_cpu = process_cpu(i32::try_from(pid).unwrap_or(0)).or(relay_cpu);
    let rss = peak_rss(pid);
    let after = CpuReading {
        server: None,
        postgres: postgres.and_then(|p| p.total()),
        client: nats_pid.and_then(process_cpu),
    };
    let _ = relay.kill().await;
    let spent = after.since(&before).per_operation(events as u64);
    let rate = events as f64 / elapsed.as_secs_f64();
    let ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{:.4}", v));
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| events | {events} |");
    println!(
        "| baseline: bare async-nats publisher, same count and size | {baseline:.0} messages/s |"
    );
    println!("| relay: PostgreSQL to JetStream, from an empty checkpoint | **{rate:.0} events/s** ({:.2} s) |", elapsed.as_secs_f64());
    println!("| ratio relay / baseline | {:.2} |", rate / baseline);
    println!(
        "| relay peak RSS | **{:.1} MiB** |",
        rss.unwrap_or(0) as f64 / 1_048_576.0
    );
    println!(
        "| CPU ms per event: relay / PostgreSQL / nats-server | {} / {} / {} |",
        ms(relay_cpu.map(|c| c.as_secs_f64() * 1000.0 / events as f64)),
        ms(spent.postgres_ms),
        ms(spent.client_ms)
    );
    println!();
    println!(
        "Targets: >= 20,000 events/s: {rate:.0} {}; peak RSS <= 64 MiB: {:.1} MiB {}",
        crate::verdict(rate >= 20_000.0),
        rss.unwrap_or(0) as f64 / 1_048_576.0,
        crate::verdict(rss.unwrap_or(u64::MAX) <= 64 * 1_048_576)
    );
    pool.close().await;
    Ok(())
}
