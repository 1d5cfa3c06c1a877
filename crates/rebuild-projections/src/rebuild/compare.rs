//! Row-by-row comparison of live and shadow read-model tables.

use sqlx::PgConnection;

use super::shadow::{ShadowTables, READ_MODEL_TABLES};
use order_store::StoreError;

/// How one table differs between live and shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDrift {
    pub table: &'static str,
    /// Rows in the live table that the events do not produce.
    pub only_live: u64,
    /// Rows the events produce that the live table lacks.
    pub only_rebuilt: u64,
    /// Up to a handful of the differing rows, as PostgreSQL prints them,
    /// prefixed `live:` or `rebuilt:`.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriftReport {
    pub tables: Vec<TableDrift>,
}

impl DriftReport {
    pub fn is_clean(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.only_live == 0 && t.only_rebuilt == 0)
    }

    pub fn drifted_rows(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| t.only_live + t.only_rebuilt)
            .sum()
    }
}

const EXAMPLES: i64 = 10;

/// Compares every read-model table, row for row (multiset difference both
/// ways), in the connection's current snapshot.
pub async fn compare(
    conn: &mut PgConnection,
    shadow: &ShadowTables,
) -> Result<DriftReport, StoreError> {
    let mut report = DriftReport::default();
    for table in READ_MODEL_TABLES {
        let live = shadow.live(table);
        let rebuilt = shadow.qualified(table);
        let count = |a: &str, b: &str| {
            format!("SELECT count(*) FROM (TABLE {a} EXCEPT ALL TABLE {b}) AS d")
        };
        let only_live: i64 = sqlx::query_scalar(&count(&live, &rebuilt))
            .fetch_one(&mut *conn)
            .await?;
        let only_rebuilt: i64 = sqlx::query_scalar(&count(&rebuilt, &live))
            .fetch_one(&mut *conn)
            .await?;
        let mut examples = Vec::new();
        if only_live + only_rebuilt > 0 {
            examples = sqlx::query_scalar(&format!(
                "(SELECT 'live: ' || d::text FROM (TABLE {live} EXCEPT ALL TABLE {rebuilt}) AS d LIMIT {EXAMPLES}) \
                 UNION ALL \
                 (SELECT 'rebuilt: ' || d::text FROM (TABLE {rebuilt} EXCEPT ALL TABLE {live}) AS d LIMIT {EXAMPLES}) \
                 ORDER BY 1"
            ))
            .fetch_all(&mut *conn)
            .await?;
        }
        report.tables.push(TableDrift {
            table,
            only_live: u64::try_from(only_live).unwrap_or(0),
            only_rebuilt: u64::try_from(only_rebuilt).unwrap_or(0),
            examples,
        });
    }
    Ok(report)
}

/// An order-independent fingerprint of a table's content: the MD5 of its rows'
/// text, sorted. Equal checksums mean equal tables, byte for byte as
/// PostgreSQL prints them.
pub async fn table_checksum(
    conn: &mut PgConnection,
    qualified_table: &str,
) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {qualified_table} AS t"
    ))
    .fetch_one(&mut *conn)
    .await?)
}
