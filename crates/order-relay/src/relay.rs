//! The relay's loop: lead, read, publish, checkpoint.
//!
//! 1. Connect to PostgreSQL (one connection: it holds the lock, reads the
//!    events and writes the checkpoint, so losing it loses all three at
//!    once) and take the relay's advisory lock; while another relay holds
//!    it, wait (standby) and try again every `lock_retry`.
//! 2. Take the checkpoint: the last event JetStream acknowledged, the
//!    stream sequence of that acknowledgement and the relay's chain (the
//!    `Orders-Relay-Chain` header of its messages). Read the chain in the
//!    stream after that sequence: events already there (acknowledged, but
//!    the checkpoint's write was lost) are not published again.
//! 3. Read the next committed events after it (gap-safe order), publish them
//!    in order, wait for every acknowledgement, then advance the checkpoint
//!    to the last of them. A crash anywhere leaves at most the batch that
//!    was not checkpointed, and step 2 finds what of it the stream holds.
//! 4. PostgreSQL trouble: drop the connection (and the lock), back off,
//!    start again at 1. JetStream trouble: keep the lock, back off, read
//!    the chain again, publish the rest of the batch.
//!
//! On a Citus cluster each node's events (`order_store::commit_order`) have
//! a lock and a checkpoint of their own: step 1 becomes "lead the nodes no
//! other relay of this name leads", tried again every `lock_retry`, and a
//! stream continued from a node another relay leads waits for that relay's
//! checkpoint.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::jetstream::{
    chain_after, ensure_marker_stream, ensure_stream, last_marker, mark, publish_in_order,
    stream_is_missing, Fenced, MarkFailure, Permanent, PublishFailure,
};
use order_store::commit_order::{
    event_placement, events_are_distributed, group_of, positions_of_group, EventPlacement,
    NodeHorizon,
};

use crate::outbox::{lag, lag_born, read_after, read_born_after, Cursor, OutboxEvent};
use crate::status::{backoff, NodeLag, Status};
use crate::RelayConfig;

/// Longest wait for a connection to PostgreSQL.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for any statement of the relay: the server's own
/// `statement_timeout` (30 s) and a margin. A server silent for longer is
/// taken as gone (its host died, or this one was cut off): the session
/// ends, so a relay cut off from PostgreSQL stops publishing within this
/// bound of its next statement (one a second at least: the lock check),
/// while PostgreSQL drops its session and lock by its keepalives.
const STATEMENT_DEADLINE: Duration = Duration::from_secs(35);

/// PostgreSQL did not answer a statement within [`STATEMENT_DEADLINE`].
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL did not answer within {STATEMENT_DEADLINE:?}: the session is taken as lost")]
pub struct DatabaseSilent;

/// `work` (statements on the relay's connection), bounded by
/// [`STATEMENT_DEADLINE`].
async fn bounded<T, E: Into<anyhow::Error>>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STATEMENT_DEADLINE, work).await {
        Ok(outcome) => outcome.map_err(Into::into),
        Err(_) => Err(DatabaseSilent.into()),
    }
}

/// Runs until `shutdown` resolves.
pub async fn run(
    config: &RelayConfig,
    jetstream: &Context,
    broker: &async_nats::Client,
    status: &Status,
    shutdown: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> anyhow::Result<()> {
    let mut failures = 0;
    loop {
        let session = tokio::select! {
            outcome = lead_and_publish(config, jetstream, broker, status, &mut failures) => outcome,
            () = &mut *shutdown => return Ok(()),
        };
        if let Err(error) = session {
            if error.downcast_ref::<Permanent>().is_some() {
                return Err(error);
            }
            failures += 1;
            let kind = if error.downcast_ref::<sqlx::Error>().is_some()
                || error.downcast_ref::<DatabaseSilent>().is_some()
            {
                "database"
            } else if error.downcast_ref::<PublishFailure>().is_some() {
                "broker"
            } else if error.downcast_ref::<Fenced>().is_some() {
                "fenced"
            } else {
                "other"
            };
            status.failing(kind, format!("{error:#}"));
            tracing::warn!(
                error = format!("{error:#}"),
                "relay interrupted; starting again"
            );
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                () = &mut *shutdown => return Ok(()),
            }
        }
    }
}

/// One session: a connection, the lock, and publishing until something
/// fails.
async fn lead_and_publish(
    config: &RelayConfig,
    jetstream: &Context,
    broker: &async_nats::Client,
    status: &Status,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let options: PgConnectOptions = config
        .database_url
        .parse::<PgConnectOptions>()?
        .application_name("order-service relay")
        // PostgreSQL drops the session of a relay whose host died or was
        // cut off within about 25 s (10 s idle, then 3 probes 5 s apart;
        // or, when it was sending an answer the relay never acknowledged,
        // 25 s of unacknowledged data: tcp_user_timeout), and with it the
        // lock, so a standby takes over; no statement of the relay runs for
        // more than 30 s.
        .options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", "25000"),
            ("statement_timeout", "30s"),
        ])
        .disable_statement_logging();
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to PostgreSQL took over {CONNECT_TIMEOUT:?}"))??;
    let distributed = bounded(events_are_distributed(&mut conn)).await?;
    // This session's name in the chains' markers.
    let session = uuid::Uuid::new_v4().to_string();
    let mut feeds: Vec<Feed> = Vec::new();
    if !distributed {
        // One commit order and one lock: wait for it.
        let mut announced_standby = false;
        while !bounded(try_lead(&mut conn, &config.name)).await? {
            if !announced_standby {
                tracing::info!(relay = %config.name, "another relay is publishing; standing by");
                announced_standby = true;
            }
            status.standby();
            tokio::time::sleep(config.lock_retry).await;
        }
        bounded(prepare_stream(&mut conn, jetstream, config)).await?;
        let feed = bounded(take_feed(
            &mut conn,
            jetstream,
            config,
            &session,
            config.name.clone(),
            0,
            None,
        ))
        .await?;
        tracing::info!(
            relay = %config.name,
            stream = %config.stream,
            transaction_id = feed.cursor.transaction_id,
            position = feed.cursor.position,
            chain = %feed.chain,
            "publishing from the checkpoint"
        );
        feeds.push(feed);
        status.active();
        *failures = 0;
    } else {
        bounded(prepare_stream(&mut conn, jetstream, config)).await?;
    }
    let mut progress = Progress::default();
    let mut lag_checked: Option<Instant> = None;
    let mut leadership_tried: Option<Instant> = None;
    let mut announced_standby = false;
    loop {
        let due = lag_checked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        let mut batch = Vec::new();
        // The feed each event of the batch belongs to (same positions).
        let mut owners: Vec<usize> = Vec::new();
        let mut read: Vec<(usize, Cursor)> = Vec::new();
        if distributed {
            let EventPlacement::Cluster(horizons) = bounded(event_placement(&mut conn)).await?
            else {
                anyhow::bail!("events is no longer distributed: starting again as a single node");
            };
            // Each node's events have a leader of their own: take the
            // nodes this relay follows that no relay of its name leads
            // (new nodes too), trying again every `lock_retry`.
            if leadership_tried.is_none_or(|at| at.elapsed() >= config.lock_retry) {
                leadership_tried = Some(Instant::now());
                for horizon in &horizons {
                    let followed = config
                        .groups
                        .as_ref()
                        .is_none_or(|groups| groups.contains(&horizon.group));
                    if !followed || feeds.iter().any(|f| f.group == horizon.group) {
                        continue;
                    }
                    let checkpoint = checkpoint_of(&config.name, horizon.group);
                    if !bounded(try_lead(&mut conn, &checkpoint)).await? {
                        continue;
                    }
                    let feed = bounded(take_feed(
                        &mut conn,
                        jetstream,
                        config,
                        &session,
                        checkpoint,
                        horizon.group,
                        Some(node_name(horizon)),
                    ))
                    .await?;
                    tracing::info!(
                        relay = %feed.checkpoint,
                        node = %horizon.node,
                        stream = %config.stream,
                        transaction_id = feed.cursor.transaction_id,
                        position = feed.cursor.position,
                        chain = %feed.chain,
                        "publishing the events born on a node"
                    );
                    feeds.push(feed);
                    if feeds.len() == 1 {
                        status.active();
                        *failures = 0;
                    }
                }
                if feeds.is_empty() {
                    if !announced_standby {
                        tracing::info!(relay = %config.name, "other relays publish every node this one follows; standing by");
                        announced_standby = true;
                    }
                    status.standby();
                }
            }
            if feeds.is_empty() {
                tokio::time::sleep(config.lock_retry).await;
                continue;
            }
            // How far each node's events are published, counting those
            // taken into this batch: a stream's event waits for its
            // predecessor born on another node, published by this relay
            // or by the one leading that node (its checkpoint).
            let mut reached: Vec<(i32, Cursor)> =
                feeds.iter().map(|f| (f.group, f.cursor)).collect();
            for (at, feed) in feeds.iter_mut().enumerate() {
                let positions = positions_of_group(feed.group);
                if due {
                    feed.lag = bounded(lag_born(&mut conn, feed.cursor, positions)).await?;
                }
                let xmin = match horizons.iter().find(|h| h.group == feed.group) {
                    Some(NodeHorizon { xmin: Ok(xmin), .. }) => *xmin,
                    Some(NodeHorizon { xmin: Err(why), .. }) => {
                        feed.problem = Some(format!("cannot read its commit horizon: {why}"));
                        continue;
                    }
                    None => {
                        feed.problem = Some(
                            "no longer a node of the cluster: its events not yet published stay unread (docs/SCALE-OUT.md, \"Removing a worker\")".to_owned(),
                        );
                        continue;
                    }
                };
                feed.problem = None;
                let mut events = bounded(read_born_after(
                    &mut conn,
                    feed.cursor,
                    xmin,
                    positions,
                    config.batch_size,
                ))
                .await?;
                for previous in events
                    .iter()
                    .filter_map(OutboxEvent::previous_born_elsewhere)
                {
                    let group = group_of(previous.position);
                    if !reached.iter().any(|(g, _)| *g == group) {
                        let checkpoint = checkpoint_of(&config.name, group);
                        reached.push((
                            group,
                            bounded(load_checkpoint(&mut conn, &checkpoint)).await?,
                        ));
                    }
                }
                if let Some(waiting) = events.iter().position(|e| {
                    e.previous_born_elsewhere().is_some_and(|previous| {
                        let group = group_of(previous.position);
                        !reached
                            .iter()
                            .any(|(g, cursor)| *g == group && *cursor >= previous)
                    })
                }) {
                    events.truncate(waiting);
                }
                if let Some(last) = events.last() {
                    if let Some(entry) = reached.iter_mut().find(|(g, _)| *g == feed.group) {
                        entry.1 = last.cursor();
                    }
                    read.push((at, last.cursor()));
                }
                owners.extend(std::iter::repeat_n(at, events.len()));
                batch.extend(events);
            }
        } else {
            if due {
                if bounded(events_are_distributed(&mut conn)).await? {
                    anyhow::bail!("events was distributed over a Citus cluster: starting again to read each node's commit order");
                }
                feeds[0].lag = bounded(lag(&mut conn, feeds[0].cursor)).await?;
            }
            batch = bounded(read_after(&mut conn, feeds[0].cursor, config.batch_size)).await?;
            if let Some(last) = batch.last() {
                read.push((0, last.cursor()));
            }
            owners = vec![0; batch.len()];
        }
        if due {
            let held = bounded(sqlx::query_file_scalar!("sql/locks_held.sql").fetch_one(&mut conn))
                .await?;
            if usize::try_from(held).unwrap_or(0) < feeds.len() {
                return Err(Permanent(format!(
                    "the relay's session holds {held} of the {} advisory locks it took: is DATABASE_URL a connection \
                     pooler in transaction mode (PgBouncer)? Leadership is a session's lock: connect the relay \
                     directly or through session pooling",
                    feeds.len()
                ))
                .into());
            }
            status.lag(feeds.iter().map(Feed::report).collect());
            lag_checked = Some(Instant::now());
        }
        if batch.is_empty() {
            status.progressed();
            progress.report(status, &feeds);
            tokio::time::sleep(config.idle_poll).await;
            continue;
        }
        // Events the stream already holds (found in this relay's chain
        // after its checkpoint) are not sent again.
        let mut already = drop_published(&mut batch, &mut owners, &feeds);
        bounded(park_oversized(&mut conn, broker, config, &mut batch)).await?;
        let mut attempt = 0;
        let published = loop {
            // Each chain of the batch marked first: refused by the broker if
            // another relay took the chain over since (this one then stands
            // down without publishing).
            let sent =
                match mark_chains(jetstream, &config.stream, &session, &mut feeds, &read).await {
                    Err(MarkFailure::Fenced(fenced)) => return Err(fenced.into()),
                    Err(MarkFailure::Broker(failure)) => Err(failure),
                    Ok(()) => {
                        let outgoing: Vec<(&OutboxEvent, &str)> = batch
                            .iter()
                            .zip(&owners)
                            .map(|(event, at)| (event, feeds[*at].chain.as_str()))
                            .collect();
                        publish_in_order(jetstream, &outgoing).await
                    }
                };
            match sent {
                Ok(mut published) => {
                    published.duplicates += already;
                    break published;
                }
                Err(error) => {
                    status.failing("broker", format!("cannot publish: {error}"));
                    let no_stream = matches!(
                        error,
                        PublishFailure::NotAcknowledged {
                            no_stream: true,
                            ..
                        }
                    );
                    if no_stream && stream_is_missing(jetstream, &config.stream).await {
                        return Err(Permanent(format!(
                            "JetStream stream {} was deleted while the relay published into it: \
                             stopping (the lock is released). To publish every event again into a new stream, \
                             start the relay with ORDERS_RELAY_REPUBLISH_FROM_START=true",
                            config.stream
                        ))
                        .into());
                    }
                    attempt += 1;
                    tracing::warn!(%error, attempt, "publishing failed; publishing the batch again");
                    tokio::time::sleep(backoff(attempt)).await;
                    // Still the leader? A lost connection ends the session.
                    bounded(sqlx::query("SELECT 1").execute(&mut conn)).await?;
                    if no_stream {
                        // The markers' stream deleted: made again (the next
                        // mark finds no marker of its own and stands down;
                        // the next session marks the chain afresh).
                        if let Err(error) = ensure_marker_stream(jetstream, &config.stream).await {
                            tracing::debug!(%error, "cannot make the marker stream yet");
                        }
                    }
                    // What of the batch reached the stream before the failure
                    // is not sent again, however long the outage lasted (the
                    // broker's de-duplication window may have passed). A
                    // broker still out fails this read too: tried next time.
                    let mut caught_up = true;
                    for &(at, _) in &read {
                        if let Err(error) =
                            catch_up_with_the_stream(jetstream, &config.stream, &mut feeds[at])
                                .await
                        {
                            tracing::debug!(%error, "cannot read the relay's chain yet");
                            caught_up = false;
                        }
                    }
                    if caught_up {
                        already += drop_published(&mut batch, &mut owners, &feeds);
                    }
                }
            }
        };
        if attempt > 0 {
            status.active();
        }
        // Every node's events of the batch are acknowledged: each feed's
        // checkpoint moves to its last one (the count goes with the first).
        let mut count = published.stored;
        for (at, last) in read {
            let feed = &mut feeds[at];
            let sequence = feed.stream_sequence.max(published.last_sequence);
            bounded(save_checkpoint(
                &mut conn,
                &feed.checkpoint,
                last,
                count,
                sequence,
            ))
            .await?;
            feed.cursor = last;
            feed.stream_sequence = sequence;
            feed.in_stream.retain(|cursor| *cursor > last);
            count = 0;
        }
        status.published(published.stored, published.duplicates);
        status.progressed();
        progress.add(published.stored, published.duplicates);
        progress.report(status, &feeds);
    }
}

/// Checks (or creates) the stream before anything is published: refused
/// when it is missing although this relay published into it, unless the
/// operator asked to publish every event again from the first
/// (`ORDERS_RELAY_REPUBLISH_FROM_START`: every checkpoint of this relay's
/// name goes back to the start; stop its other relays first).
async fn prepare_stream(
    conn: &mut PgConnection,
    jetstream: &Context,
    config: &RelayConfig,
) -> anyhow::Result<()> {
    let mut published = sqlx::query_file_scalar!("sql/published_before.sql", config.name)
        .fetch_one(&mut *conn)
        .await?;
    if published
        && config.republish_from_start
        && stream_is_missing(jetstream, &config.stream).await
    {
        tracing::warn!(
            relay = %config.name,
            stream = %config.stream,
            "the stream is missing: publishing every event again from the first, as asked (ORDERS_RELAY_REPUBLISH_FROM_START)"
        );
        sqlx::query_file!("sql/start_from_the_first_event.sql", config.name)
            .execute(&mut *conn)
            .await?;
        published = false;
    }
    ensure_stream(
        jetstream,
        &config.stream,
        config.duplicate_window,
        published,
    )
    .await?;
    ensure_marker_stream(jetstream, &config.stream).await
}

/// Events whose message would exceed the broker's `max_payload`: recorded
/// in `relay_parked_events` and published as a placeholder under the same
/// message id (docs/EVENTS.md), so that one oversized event neither stops
/// the relay (the broker refuses it and drops the connection, for ever)
/// nor leaves a gap in the stream.
async fn park_oversized(
    conn: &mut PgConnection,
    broker: &async_nats::Client,
    config: &RelayConfig,
    batch: &mut [OutboxEvent],
) -> anyhow::Result<()> {
    let max_payload = broker.server_info().max_payload;
    if max_payload == 0 {
        // Not connected yet: publishing fails and is retried.
        return Ok(());
    }
    // Room for the subject and the headers (Nats-Msg-Id).
    let limit = max_payload.saturating_sub(1024);
    for event in batch.iter_mut() {
        if event.estimated_size() <= limit {
            continue;
        }
        let size = event.envelope()?.len();
        if size <= limit {
            continue;
        }
        let (tenant, kind, id, sequence) = event.coordinates();
        sqlx::query_file!(
            "sql/park_event.sql",
            tenant,
            kind,
            id,
            sequence,
            config.name,
            event.cursor().position,
            i64::try_from(size).unwrap_or(i64::MAX),
            i64::try_from(max_payload).unwrap_or(i64::MAX)
        )
        .execute(&mut *conn)
        .await?;
        tracing::warn!(
            tenant,
            stream = %format!("{kind}/{id}"),
            sequence,
            size,
            max_payload,
            "an event's message exceeds the broker's max_payload: parked (relay_parked_events), a placeholder published in its place"
        );
        metrics::counter!("orders_relay_parked_total").increment(1);
        event.park(size, max_payload);
    }
    Ok(())
}

/// The checkpoint (and leadership lock) of the events born on `group`:
/// the relay's own name for the coordinator (group 0, and the whole store
/// on a single PostgreSQL: a relay goes on across `distribute`),
/// `{name}@group{group}` for every other node.
fn checkpoint_of(name: &str, group: i32) -> String {
    if group == 0 {
        name.to_owned()
    } else {
        format!("{name}@group{group}")
    }
}

/// How `/readyz` and the metrics name a node.
fn node_name(horizon: &NodeHorizon) -> String {
    if horizon.group == 0 {
        "coordinator".to_owned()
    } else {
        horizon.node.clone()
    }
}

/// Takes the leadership lock of `checkpoint` if no other relay holds it.
async fn try_lead(conn: &mut PgConnection, checkpoint: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query_file_scalar!("sql/try_lead.sql", checkpoint)
        .fetch_one(conn)
        .await?)
}

/// One commit order the relay follows, with its own checkpoint: the whole
/// store on one PostgreSQL, or on a cluster the events born on one node
/// (`order_store::commit_order`). The coordinator's feed keeps the relay's
/// own name, so a relay that ran before `distribute` goes on from its
/// checkpoint; every other node's is `{name}@group{group}`.
#[derive(Debug)]
struct Feed {
    checkpoint: String,
    group: i32,
    /// On a cluster: the node, for `/readyz` and the metrics.
    node: Option<String>,
    cursor: Cursor,
    /// The chain its messages carry (`Orders-Relay-Chain`).
    chain: String,
    /// The sequence of the chain's last marker, this session's.
    marker: u64,
    /// The stream sequence of the last message acknowledged with the
    /// checkpoint: every later message of the chain comes after it.
    stream_sequence: u64,
    /// Events after the checkpoint the stream already holds (the chain's
    /// messages after `stream_sequence`): not published again.
    in_stream: BTreeSet<Cursor>,
    /// Events not yet published and the age of the oldest, as last asked.
    lag: (i64, f64),
    /// Why this node's events cannot be read now.
    problem: Option<String>,
}

impl Feed {
    fn report(&self) -> NodeLag {
        NodeLag {
            node: self.node.clone(),
            checkpoint: self.checkpoint.clone(),
            lag_events: self.lag.0,
            lag_seconds: self.lag.1,
            problem: self.problem.clone(),
        }
    }
}

async fn load_checkpoint(conn: &mut PgConnection, name: &str) -> anyhow::Result<Cursor> {
    let row = sqlx::query_file!("sql/load_checkpoint.sql", name)
        .fetch_optional(conn)
        .await?;
    Ok(row.map_or(Cursor::default(), |row| Cursor {
        transaction_id: row.xid,
        position: row.position,
    }))
}

/// Leads `checkpoint` from now on: its cursor and chain (a new chain the
/// first time), then what the stream already holds of the chain after the
/// checkpoint, so that a checkpoint whose last write was lost (PostgreSQL
/// down after the broker's acknowledgements, a crash between the two) sends
/// nothing twice.
async fn take_feed(
    conn: &mut PgConnection,
    jetstream: &Context,
    config: &RelayConfig,
    session: &str,
    checkpoint: String,
    group: i32,
    node: Option<String>,
) -> anyhow::Result<Feed> {
    let offered = uuid::Uuid::new_v4().to_string();
    let row = sqlx::query_file!("sql/take_checkpoint.sql", checkpoint, offered)
        .fetch_one(&mut *conn)
        .await?;
    // The chain is this session's from now on: a marker the broker accepts
    // only after the chain's last one, so a previous leader still running
    // is refused at its next batch. Then the chain is read.
    let (last, _) = last_marker(jetstream, &config.stream, &row.chain).await?;
    let marker = mark(jetstream, &config.stream, &row.chain, session, last).await?;
    let mut feed = Feed {
        checkpoint,
        group,
        node,
        cursor: Cursor {
            transaction_id: row.xid,
            position: row.position,
        },
        chain: row.chain,
        marker,
        stream_sequence: u64::try_from(row.stream_sequence).unwrap_or(0),
        in_stream: BTreeSet::new(),
        lag: (0, 0.0),
        problem: None,
    };
    // A chain named just now has no message in the stream yet.
    if !row.new_chain {
        catch_up_with_the_stream(jetstream, &config.stream, &mut feed).await?;
    }
    Ok(feed)
}

/// Reads the feed's chain after its checkpoint's stream sequence: the
/// events of those messages past the checkpoint are in the stream already.
async fn catch_up_with_the_stream(
    jetstream: &Context,
    stream: &str,
    feed: &mut Feed,
) -> anyhow::Result<()> {
    let tail = chain_after(jetstream, stream, &feed.chain, feed.stream_sequence).await?;
    feed.in_stream = tail
        .cursors
        .into_iter()
        .filter(|cursor| *cursor > feed.cursor)
        .collect();
    if !feed.in_stream.is_empty() {
        tracing::info!(
            relay = %feed.checkpoint,
            chain = %feed.chain,
            ahead = feed.in_stream.len(),
            scanned = tail.scanned,
            "the stream already holds events after the checkpoint: they are not published again"
        );
    }
    Ok(())
}

/// Marks the chain of every feed the batch holds events of.
async fn mark_chains(
    jetstream: &Context,
    stream: &str,
    session: &str,
    feeds: &mut [Feed],
    read: &[(usize, Cursor)],
) -> Result<(), MarkFailure> {
    for &(at, _) in read {
        let feed = &mut feeds[at];
        feed.marker = mark(jetstream, stream, &feed.chain, session, feed.marker).await?;
    }
    Ok(())
}

/// Takes out of `batch` (and `owners`) the events the stream already holds;
/// answers how many.
fn drop_published(batch: &mut Vec<OutboxEvent>, owners: &mut Vec<usize>, feeds: &[Feed]) -> u64 {
    if feeds.iter().all(|feed| feed.in_stream.is_empty()) {
        return 0;
    }
    let before = batch.len();
    let (kept, kept_owners): (Vec<OutboxEvent>, Vec<usize>) = std::mem::take(batch)
        .into_iter()
        .zip(owners.drain(..))
        .filter(|(event, at)| !feeds[*at].in_stream.contains(&event.cursor()))
        .unzip();
    *batch = kept;
    *owners = kept_owners;
    (before - batch.len()) as u64
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    cursor: Cursor,
    published: u64,
    stream_sequence: u64,
) -> anyhow::Result<()> {
    sqlx::query_file!(
        "sql/save_checkpoint.sql",
        name,
        cursor.transaction_id.to_string(),
        cursor.position,
        i64::try_from(published).unwrap_or(i64::MAX),
        i64::try_from(stream_sequence).unwrap_or(i64::MAX)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A progress line in the log, at most every 10 seconds and only when
/// something happened.
#[derive(Debug)]
struct Progress {
    since: Instant,
    stored: u64,
    duplicates: u64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            stored: 0,
            duplicates: 0,
        }
    }
}

impl Progress {
    fn add(&mut self, stored: u64, duplicates: u64) {
        self.stored += stored;
        self.duplicates += duplicates;
    }

    fn report(&mut self, status: &Status, feeds: &[Feed]) {
        let elapsed = self.since.elapsed();
        if elapsed < Duration::from_secs(10) {
            return;
        }
        if self.stored + self.duplicates > 0 {
            let readiness = status.snapshot();
            tracing::info!(
                published = self.stored,
                duplicates = self.duplicates,
                per_second = (self.stored as f64 / elapsed.as_secs_f64()).round(),
                lag_events = readiness.lag_events,
                lag_seconds = readiness.lag_seconds,
                position = feeds.iter().map(|f| f.cursor.position).max().unwrap_or(0),
                "relay progress"
            );
        }
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(group: i32, in_stream: &[i64]) -> Feed {
        Feed {
            checkpoint: format!("relay@group{group}"),
            group,
            node: None,
            cursor: Cursor::default(),
            chain: format!("chain-{group}"),
            marker: 0,
            stream_sequence: 0,
            in_stream: in_stream
                .iter()
                .map(|&position| Cursor {
                    transaction_id: 10,
                    position,
                })
                .collect(),
            lag: (0, 0.0),
            problem: None,
        }
    }

    #[test]
    fn it_takes_out_only_the_events_each_feeds_chain_already_holds() {
        let mut batch: Vec<OutboxEvent> = (1..=6)
            .map(|i| OutboxEvent::of_order("shop", &format!("o{i}"), 1, i))
            .collect();
        // Odd positions are the first feed's, even ones the second's; the
        // first feed's chain holds 3, the second's 4 and 5 (5 is not its
        // event: it stays).
        let mut owners = vec![0, 1, 0, 1, 0, 1];
        let feeds = [feed(1, &[3]), feed(2, &[4, 5])];
        assert_eq!(drop_published(&mut batch, &mut owners, &feeds), 2);
        let kept: Vec<i64> = batch.iter().map(|e| e.cursor().position).collect();
        assert_eq!(kept, [1, 2, 5, 6]);
        assert_eq!(owners, [0, 1, 0, 1]);
    }

    #[test]
    fn it_keeps_the_whole_batch_when_no_chain_is_ahead() {
        let mut batch = vec![OutboxEvent::of_order("shop", "o", 1, 1)];
        let mut owners = vec![0];
        assert_eq!(drop_published(&mut batch, &mut owners, &[feed(0, &[])]), 0);
        assert_eq!(batch.len(), 1);
    }
}
