//! What a rebuild tells its operator while it runs.

/// The stages of a rebuild, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Replaying committed events into the shadow tables while the service
    /// keeps running.
    Replaying,
    /// Building the shadow tables' indexes and checks.
    Indexing,
    /// Waiting for the locks of the cut-over (writers pause here).
    Locking,
    /// Replaying the last events under the locks.
    CatchingUp,
    /// Comparing the shadow tables with the live ones (--verify).
    Comparing,
    /// Swapping the shadow tables in.
    Swapping,
}

/// Progress reports. Implementations must be cheap: `applied` is called once
/// per batch.
pub trait RebuildProgress: Send + Sync {
    /// How many events the store holds as the rebuild starts (more may come).
    fn started(&self, _events_in_store: u64) {}
    fn stage(&self, _stage: Stage) {}
    /// `events` more events were applied to the shadow tables.
    fn applied(&self, _events: u64) {}
    /// The rebuild is waiting for something it must not skip; `why` says what.
    fn waiting(&self, _why: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl RebuildProgress for Silent {}
