use order_domain::Sku;

/// A failure of the store itself (as opposed to a command the domain refused).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded (pool exhausted,
    /// connection lost, server shutting down). Retrying later is safe: every
    /// command is idempotent.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// An event in the store cannot be decoded by this version of the code.
    #[error("event {stream} #{sequence} cannot be read: {reason}")]
    UnreadableEvent {
        stream: String,
        sequence: i64,
        reason: String,
    },
    /// Concurrent commands kept changing the same stream; the command was
    /// tried the given number of times.
    #[error("stream {stream} kept changing under concurrent commands ({attempts} attempts)")]
    ContendedStream { stream: String, attempts: u32 },
    /// Two orders of one tenant drew the same order number (about 4 in 10
    /// million per million orders). The checkout is refused and stores nothing.
    #[error("order number {number} is already taken in this tenant")]
    OrderNumberTaken { number: String },
    /// A read-model row an event needs is missing: the read side is out of
    /// step with the events (run the rebuild with --verify).
    #[error("the read model has no row for {what}; run rebuild-projections --verify")]
    ReadModelOutOfStep { what: String },
    /// Something the framework reported that fits none of the above.
    #[error("{0}")]
    Internal(String),
}

impl StoreError {
    /// True when a retry after a pause may succeed (the HTTP layer answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

/// The constraint a database error names, as the migrations named it. On a
/// distributed PostgreSQL (Citus) the error comes from a shard: its
/// constraints carry the shard's number (`events_pkey_102008`), and an
/// error relayed from a worker carries the name in its message only
/// (`duplicate key value violates unique constraint "..."`).
pub(crate) fn constraint_of(err: &sqlx::Error) -> Option<&str> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    let name = match db.constraint() {
        Some(name) => name,
        None => db
            .message()
            .strip_prefix("duplicate key value violates unique constraint \"")?
            .strip_suffix('"')?,
    };
    Some(unsharded(name))
}

/// A shard's constraint name without the shard's number.
fn unsharded(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

/// SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Connection-level trouble: worth a 503 and a retry, not a 500.
pub(crate) fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(_) => sqlstate(err).is_some_and(|code| {
            // 08: connection exception; 57P01-03: admin/crash shutdown,
            // cannot connect now; 53300: too many connections.
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Deadlocks and serialization failures: the transaction can simply be run again.
pub(crate) fn is_transient(err: &sqlx::Error) -> bool {
    sqlstate(err).is_some_and(|code| matches!(code.as_str(), "40001" | "40P01"))
}

/// Why the inventory refused a change (in the transaction that would have
/// stored the change's events, which are therefore not stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockRejection {
    #[error("not enough stock of {sku}: requested {requested}, available {available}")]
    InsufficientStock {
        sku: Sku,
        requested: i64,
        available: i64,
    },
    #[error("unknown SKU {sku}")]
    UnknownSku { sku: Sku },
}

#[cfg(test)]
mod tests {
    use super::unsharded;

    #[test]
    fn a_shards_constraint_is_named_as_the_migrations_name_it() {
        assert_eq!(unsharded("events_pkey_102008"), "events_pkey");
        assert_eq!(
            unsharded("events_one_stream_per_key_102040"),
            "events_one_stream_per_key"
        );
        assert_eq!(unsharded("events_pkey"), "events_pkey");
        assert_eq!(
            unsharded("store_orders_number_per_tenant"),
            "store_orders_number_per_tenant"
        );
    }
}
