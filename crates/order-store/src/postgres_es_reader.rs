//! Reading this store with postgres-es: how another cqrs-es application
//! loads our aggregates from the `events` table (docs/EVENTS.md, "Reading
//! this store with postgres-es").
//!
//! Why it works: `events` keeps postgres-es 0.5's column names and types
//! (`aggregate_type`, `aggregate_id`, `sequence`, `event_type`,
//! `event_version`, `payload`, `metadata`), every stream id is a UUIDv5 of
//! the tenant and a key or SKU (so an id alone names one tenant's stream),
//! and old event versions are brought up to date by the same upcasters our
//! own decoder runs (`event_upcasters.rs`). Its read, `WHERE aggregate_type
//! = $1 AND aggregate_id = $2`, is a point lookup on `events_by_stream`
//! (migration 10); on a cluster sharded by tenant it asks every shard.
//!
//! Why our writes do not go through it: postgres-es inserts events without
//! `tenant_id` (the store refuses them: NOT NULL), projects nothing in the
//! transaction (our read model is written with the events), takes a round
//! trip per event plus the transaction's, calls every unique violation a
//! conflict, and does not retry one. The write path is `append_to_stream`
//! (`event_store.rs`).

use cqrs_es::persist::PersistedEventStore;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::event_upcasters::upcasters_for;
use crate::stream_kind::StreamKind;

/// cqrs-es' event store of aggregate `A` over postgres-es' repository,
/// pointed at this store's `events` table (as `search_path` resolves it),
/// with this store's upcasters. Load with
/// `cqrs_es::EventStore::load_aggregate(&store, id)`.
pub fn postgres_es_event_store<A: StreamKind>(
    pool: PgPool,
) -> PersistedEventStore<PostgresEventRepository, A> {
    PersistedEventStore::new_event_store(PostgresEventRepository::new(pool))
        .with_upcasters(upcasters_for(A::TYPE))
}
