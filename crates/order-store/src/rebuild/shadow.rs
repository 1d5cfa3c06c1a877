//! Shadow copies of the read-model tables, for a rebuild or a verify.
//!
//! A shadow schema holds tables with the live tables' names, columns,
//! defaults, checks, keys and indexes (with the same names, so that a swap
//! leaves the schema exactly as the migrations made it). The projection SQL
//! names tables without a schema; `SET LOCAL search_path` picks the shadow.

use sqlx::PgConnection;

use crate::error::StoreError;

/// The tables the projections write, parents before children.
pub const READ_MODEL_TABLES: [&str; 3] = ["inventory", "store_orders", "store_order_items"];

/// Checks that hold of a replayed table at the end, but not necessarily
/// between two events of different streams: the replay applies them in
/// transaction order, not in exact commit order, and stock is only guarded
/// when it is sold. Dropped while replaying, re-validated before use.
const RELAXED_WHILE_REPLAYING: [(&str, &str); 1] =
    [("inventory", "inventory_on_hand_not_negative")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowTables {
    live_schema: String,
    schema: String,
}

/// A schema name we create: lowercase letters, digits and underscores.
fn checked_schema_name(name: &str) -> Result<&str, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::Internal(format!(
            "invalid shadow schema name {name:?}"
        )))
    }
}

impl ShadowTables {
    /// (Re)creates the schema `schema` with empty copies of the live tables.
    pub async fn create(conn: &mut PgConnection, schema: &str) -> Result<Self, StoreError> {
        let schema = checked_schema_name(schema)?.to_owned();
        let live_schema: Option<String> = sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass('store_orders')",
        )
        .fetch_one(&mut *conn)
        .await?;
        let live_schema = live_schema.ok_or_else(|| {
            StoreError::Internal(
                "table store_orders does not exist: run the migrations first".into(),
            )
        })?;
        let shadow = Self {
            live_schema,
            schema,
        };
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        // Unqualified names nowhere: every definition read below comes back
        // schema-qualified, ready to be pointed at the shadow schema.
        sqlx::query("SET LOCAL search_path TO pg_catalog")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", shadow.schema))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("CREATE SCHEMA {}", shadow.schema))
            .execute(&mut *tx)
            .await?;
        for table in READ_MODEL_TABLES {
            sqlx::query(&format!(
                "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
                 INCLUDING COMMENTS INCLUDING STORAGE INCLUDING GENERATED INCLUDING IDENTITY)",
                shadow.qualified(table),
                shadow.live(table)
            ))
            .execute(&mut *tx)
            .await?;
        }
        // Keys first (a foreign key needs its target's key), then the rest.
        let constraints: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.conrelid::regclass::text, quote_ident(c.conname::text), pg_get_constraintdef(c.oid) \
             FROM pg_constraint c \
             WHERE c.conrelid = ANY($1::regclass[]) AND c.contype IN ('p', 'u', 'f') \
             ORDER BY c.contype = 'f', c.conname",
        )
        .bind(shadow.live_tables())
        .fetch_all(&mut *tx)
        .await?;
        for (table, name, definition) in constraints {
            sqlx::query(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {name} {}",
                shadow.to_shadow(&table),
                shadow.to_shadow(&definition)
            ))
            .execute(&mut *tx)
            .await?;
        }
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = ANY($1::regclass[]) \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) \
             ORDER BY i.indexrelid",
        )
        .bind(shadow.live_tables())
        .fetch_all(&mut *tx)
        .await?;
        for (definition,) in indexes {
            sqlx::query(&shadow.to_shadow(&definition))
                .execute(&mut *tx)
                .await?;
        }
        for (table, constraint) in RELAXED_WHILE_REPLAYING {
            sqlx::query(&format!(
                "ALTER TABLE {} DROP CONSTRAINT {constraint}",
                shadow.qualified(table)
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(shadow)
    }

    /// Puts back the checks relaxed while replaying; fails if the replayed
    /// data breaks one (which would mean the events themselves do).
    pub async fn restore_checks(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        for (table, constraint) in RELAXED_WHILE_REPLAYING {
            let definition: String = sqlx::query_scalar(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c \
                 WHERE c.conrelid = $1::regclass AND c.conname = $2",
            )
            .bind(self.live(table))
            .bind(constraint)
            .fetch_one(&mut *conn)
            .await?;
            sqlx::query(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {constraint} {definition}",
                self.qualified(table)
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Makes unqualified table names resolve to the shadow tables for the
    /// rest of the current transaction.
    pub async fn use_in_transaction(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "SET LOCAL search_path TO {}, {}",
            self.schema, self.live_schema
        ))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn drop(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub fn live_schema(&self) -> &str {
        &self.live_schema
    }

    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{table}", self.schema)
    }

    pub fn live(&self, table: &str) -> String {
        format!("{}.{table}", self.live_schema)
    }

    fn live_tables(&self) -> Vec<String> {
        READ_MODEL_TABLES.iter().map(|t| self.live(t)).collect()
    }

    /// Points every qualified live table name in `sql` at the shadow table.
    fn to_shadow(&self, sql: &str) -> String {
        READ_MODEL_TABLES.iter().fold(sql.to_owned(), |sql, table| {
            replace_name(&sql, &self.live(table), &self.qualified(table))
        })
    }
}

/// Replaces whole occurrences of the qualified name `from` (not prefixes of
/// longer names: `public.store_orders` inside `public.store_orders_x`).
fn replace_name(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(from) {
        let after = &rest[at + from.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_renames_whole_table_names_only() {
        assert_eq!(
            replace_name(
                "ON public.store_orders USING btree; public.store_orders_items",
                "public.store_orders",
                "shadow.store_orders"
            ),
            "ON shadow.store_orders USING btree; public.store_orders_items"
        );
    }

    #[test]
    fn it_accepts_only_plain_schema_names() {
        assert!(checked_schema_name("rebuild_shadow_1").is_ok());
        for bad in ["", "Shadow", "x; DROP TABLE events", "1abc", "a-b"] {
            assert!(checked_schema_name(bad).is_err(), "{bad:?}");
        }
    }
}
