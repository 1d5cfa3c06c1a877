//! Group commit: a process's appends go through a few writers, and the
//! appends that arrive while the writers are busy are stored together, one
//! transaction per tenant's batch.
//!
//! Why: one order per transaction pays, per order, a commit (a WAL flush),
//! a snapshot, a function call, a round trip and statements that touch one
//! row each; under load those are most of PostgreSQL's work for a checkout.
//! A batch pays them once.
//!
//! How:
//! - every append is a job on one queue; each writer takes the first job
//!   waiting (at once: an idle service adds no delay, there is no timer)
//!   and every job queued behind it, up to [`GroupCommitSettings::max_batch`];
//!   batches form only from requests that had to wait anyway;
//! - the jobs it took are split by tenant (a tenant's batch stays one
//!   node's transaction on a tenant-sharded cluster) and sorted by stream,
//!   and each tenant's batch is one `append_batch` call (migration 14): the
//!   inventory rows of the whole batch locked first in SKU order, each
//!   append checked as a lone append would be (its stream, its prices, the
//!   stock the batch's earlier appends left), then every accepted append's
//!   events inserted and projected at once;
//! - each job gets its own answer (stored, moved on, refused) and the caller
//!   goes on exactly as for a lone append (decide again, re-price...);
//! - when the whole call fails: a stream of the batch taken by another
//!   connection meanwhile (SQLSTATE SB001) or a deadlock, it is sent again
//!   (the other append has committed, so its duplicate here is answered
//!   `moved`); anything else, or too many attempts, and every job of the
//!   batch is stored alone, so that one offender's error reaches its caller
//!   only.
//!
//! Overload fails fast, as it does for a request waiting for a pool
//! connection: a job still waiting for a writer after the pool's acquire
//! timeout is withdrawn and its caller answered "unavailable" (503, retry:
//! nothing was stored); a job a writer already took is waited for.
//!
//! A lone job is stored with `append_to_stream` itself: a batch of one costs
//! what an append cost before group commit, plus a hop through the queue.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::{is_transient, sqlstate, StoreError};
use crate::event_store::{AppendAnswer, AppendCall, AppendFailure, Statement};

/// How many appends may wait for a writer before callers wait to queue.
const QUEUE_CAPACITY: usize = 4_096;

/// How many times a batch that failed as a whole on a lost race or a
/// deadlock is sent before its appends are stored one by one.
const BATCH_ATTEMPTS: u32 = 3;

/// How many writers and how large a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Writers, each storing one batch at a time on one connection of the
    /// pool. One by default: measured on 2 cores (docs/BENCHMARKS.md), two
    /// writers' batches nearly always share a SKU, so the second waits for
    /// the first's locks anyway, and the batches are half as large.
    pub writers: usize,
    /// Most appends in one batch: a batch holds its inventory rows until
    /// it commits, so a larger batch makes the next one wait longer.
    pub max_batch: usize,
}

impl GroupCommitSettings {
    /// The largest batch allowed.
    pub const MAX_BATCH_LIMIT: usize = 64;
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            writers: 1,
            max_batch: 32,
        }
    }
}

/// The queue to this process's writers. Cheap to clone; the writers stop
/// when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
    /// How long a job may wait for a writer: the pool's acquire timeout.
    max_wait: Duration,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

type Answer = Result<Vec<AppendAnswer>, AppendFailure>;

struct Job {
    call: Arc<AppendCall>,
    queued_at: Instant,
    /// QUEUED, then TAKEN by a writer or WITHDRAWN by its caller: never
    /// both, so a withdrawn job is never stored.
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<Answer>,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

impl Job {
    /// Claims the job for a writer; false if its caller withdrew it.
    fn take(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The answer to a job that waited too long for a writer, or found the
/// queue full: as for a pool with no connection to give.
fn overloaded() -> AppendFailure {
    AppendFailure::Store(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
}

impl GroupCommit {
    /// Starts the writers (on the current tokio runtime).
    pub fn start(pool: PgPool, settings: GroupCommitSettings) -> Self {
        let max_wait = pool.options().get_acquire_timeout();
        let (queue, jobs) = mpsc::channel(QUEUE_CAPACITY);
        let jobs = Arc::new(Mutex::new(jobs));
        let max_batch = settings
            .max_batch
            .clamp(1, GroupCommitSettings::MAX_BATCH_LIMIT);
        for _ in 0..settings.writers.max(1) {
            tokio::spawn(write_batches(pool.clone(), Arc::clone(&jobs), max_batch));
        }
        Self { queue, max_wait }
    }

    /// How many appends are waiting for a writer now.
    pub fn waiting(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Stores `call` in the next batch and returns its own answer.
    pub(crate) async fn append(&self, call: Arc<AppendCall>) -> Answer {
        let stopped = || AppendFailure::Store(StoreError::Internal("the writers stopped".into()));
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        self.queue
            .try_send(Job {
                call,
                queued_at: Instant::now(),
                state: Arc::clone(&state),
                reply,
            })
            .map_err(|full_or_closed| match full_or_closed {
                mpsc::error::TrySendError::Full(_) => overloaded(),
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        if let Ok(answered) = tokio::time::timeout(self.max_wait, &mut answer).await {
            return answered.map_err(|_| stopped())?;
        }
        let withdrawn = state
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if withdrawn {
            metrics::counter!("orders_append_overloaded_total").increment(1);
            return Err(overloaded());
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// One writer: takes what is waiting, stores it, and again.
async fn write_batches(pool: PgPool, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        let taken = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut taken = Vec::with_capacity(max_batch);
            if first.take() {
                taken.push(first);
            }
            while taken.len() < max_batch {
                match jobs.try_recv() {
                    Ok(job) if job.take() => taken.push(job),
                    Ok(_withdrawn) => {}
                    Err(_) => break,
                }
            }
            taken
        };
        for batch in by_tenant(taken) {
            store_batch(&pool, batch).await;
        }
    }
}

/// The jobs split by tenant, tenants in the order their first job came
/// (and by the bounds on unpaid orders, which one call takes for all its
/// appends: one process's are all the same).
fn by_tenant(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut batches: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let same_tenant = batches.iter_mut().find(|batch| {
            batch.first().is_some_and(|first| {
                first.call.tenant == job.call.tenant && first.call.unpaid == job.call.unpaid
            })
        });
        match same_tenant {
            Some(batch) => batch.push(job),
            None => batches.push(vec![job]),
        }
    }
    batches
}

async fn store_batch(pool: &PgPool, mut batch: Vec<Job>) {
    metrics::histogram!("orders_append_batch_size").record(batch.len() as f64);
    for job in &batch {
        metrics::histogram!("orders_append_queue_wait_seconds")
            .record(job.queued_at.elapsed().as_secs_f64());
    }
    if batch.len() > 1 {
        // One global lock order: streams in the order of their ids (the
        // inventory rows are locked first, in SKU order, by the call).
        batch.sort_by(|a, b| {
            (a.call.aggregate_type, &a.call.id).cmp(&(b.call.aggregate_type, &b.call.id))
        });
        let mut attempt = 1;
        loop {
            match append_batch(pool, &batch).await {
                Ok(answers) => {
                    for (job, answer) in batch.into_iter().zip(answers) {
                        // A caller that went away no longer needs its answer.
                        let _ = job.reply.send(answer);
                    }
                    return;
                }
                Err(err) if lost_race(&err) && attempt < BATCH_ATTEMPTS => {
                    tracing::debug!("another connection took a stream of the batch; again");
                    attempt += 1;
                }
                Err(err) if is_transient(&err) && attempt < BATCH_ATTEMPTS => {
                    tracing::debug!(error = %err, "retrying a deadlocked batch");
                    tokio::time::sleep(Duration::from_millis(rand::random_range(1..=10))).await;
                    attempt += 1;
                }
                Err(err) => {
                    metrics::counter!("orders_append_batches_split_total").increment(1);
                    tracing::info!(
                        appends = batch.len(),
                        error = %err,
                        "a batch failed as a whole; storing its appends one by one"
                    );
                    break;
                }
            }
        }
    }
    for job in batch {
        let answer = job.call.run_alone(pool, Statement::Append).await;
        let _ = job.reply.send(answer);
    }
}

/// A row of `append_batch`'s answer: an append's row, and which append.
#[derive(Debug, sqlx::FromRow)]
struct BatchAnswer {
    append_no: i32,
    #[sqlx(flatten)]
    answer: AppendAnswer,
}

/// A row of the `batched_append` composite type: one append of a batch, and
/// where its part of each concatenated array ends.
#[derive(Debug, Clone, sqlx::Type)]
#[sqlx(type_name = "batched_append")]
struct BatchedAppendSql {
    aggregate_type: String,
    aggregate_id: String,
    expected: i64,
    events_end: i32,
    guard_end: i32,
    prices_end: i32,
    products_end: i32,
    stock_end: i32,
    orders_end: i32,
    updates_end: i32,
    items_end: i32,
}

/// Where the part of an array holding `len` elements ends (1-based).
fn end(len: usize) -> Result<i32, sqlx::Error> {
    i32::try_from(len).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Stores the batch in one call; one answer per job, in the batch's order.
async fn append_batch(pool: &PgPool, batch: &[Job]) -> Result<Vec<Answer>, sqlx::Error> {
    let mut appends = Vec::with_capacity(batch.len());
    let (mut events, mut guard, mut prices) = (Vec::new(), Vec::new(), Vec::new());
    let (mut products, mut stock, mut orders, mut updates, mut items) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for job in batch {
        let call = &job.call;
        events.extend(call.events.iter().cloned());
        guard.extend(call.guard.iter().cloned());
        prices.extend(call.prices.iter().cloned());
        products.extend(call.arrays.products.iter().cloned());
        stock.extend(call.arrays.stock.iter().cloned());
        orders.extend(call.arrays.orders.iter().cloned());
        updates.extend(call.arrays.updates.iter().cloned());
        items.extend(call.arrays.items.iter().cloned());
        appends.push(BatchedAppendSql {
            aggregate_type: call.aggregate_type.to_owned(),
            aggregate_id: call.id.clone(),
            expected: call.expected,
            events_end: end(events.len())?,
            guard_end: end(guard.len())?,
            prices_end: end(prices.len())?,
            products_end: end(products.len())?,
            stock_end: end(stock.len())?,
            orders_end: end(orders.len())?,
            updates_end: end(updates.len())?,
            items_end: end(items.len())?,
        });
    }
    let tenant = batch
        .first()
        .map(|job| job.call.tenant.as_str())
        .unwrap_or_default();
    let unpaid = batch.first().and_then(|job| job.call.unpaid);
    let rows: Vec<BatchAnswer> = sqlx::query_as(include_str!("sql/append_batch.sql"))
        .bind(tenant)
        .bind(appends)
        .bind(events)
        .bind(guard)
        .bind(prices)
        .bind(products)
        .bind(stock)
        .bind(orders)
        .bind(updates)
        .bind(items)
        .bind(unpaid.map(|u| i64::from(u.orders)))
        .bind(unpaid.map(|u| i64::from(u.units)))
        .fetch_all(pool)
        .await?;
    let mut answers: Vec<Vec<AppendAnswer>> = batch.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let slot = usize::try_from(row.append_no)
            .ok()
            .and_then(|no| no.checked_sub(1))
            .and_then(|index| answers.get_mut(index));
        match slot {
            Some(slot) => slot.push(row.answer),
            None => {
                return Err(sqlx::Error::Protocol(format!(
                    "append_batch answered for append {} of {}",
                    row.append_no,
                    batch.len()
                )))
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|rows| {
            if rows.is_empty() {
                Err(AppendFailure::Store(StoreError::Internal(
                    "append_batch answered nothing for an append".into(),
                )))
            } else {
                Ok(rows)
            }
        })
        .collect())
}

/// `append_batch` found a stream of the batch appended to by another
/// connection and stored nothing.
fn lost_race(err: &sqlx::Error) -> bool {
    sqlstate(err).as_deref() == Some("SB001")
}
