//! Shadow copies of the read-model tables, for a rebuild or a verify.
//!
//! A shadow schema holds tables with the live tables' names, columns,
//! defaults, checks, keys and indexes (with the same names, so that a swap
//! leaves the schema exactly as the migrations made it). The projection SQL
//! names tables without a schema; `SET LOCAL search_path` picks the shadow.

use sqlx::PgConnection;

use order_store::StoreError;

/// The tables the projections write, parents before children.
pub const READ_MODEL_TABLES: [&str; 5] = [
    "inventory",
    "store_orders",
    "store_order_items",
    "store_checkout_abandonments",
    "store_unpaid_holds",
];

/// Checks that hold of a replayed table at the end, but not necessarily
/// between two events of different streams: the replay applies them in
/// transaction order, not in exact commit order, and stock is only guarded
/// when it is sold. Dropped while replaying, re-validated before use.
/// The tables the replay looks rows up in (the projection updates orders
/// by id, stock by SKU and unpaid holds by customer): their primary keys exist from the start. The
/// others (order items, abandoned checkouts) are only inserted into while
/// replaying, so their primary keys are built once at the end, like every
/// other index: one sorted build instead of an index insertion per row,
/// which was a fifth of the replay's database time on a million events.
const LOOKED_UP_WHILE_REPLAYING: [&str; 3] = ["inventory", "store_orders", "store_unpaid_holds"];

const RELAXED_WHILE_REPLAYING: [(&str, &str); 1] =
    [("inventory", "inventory_on_hand_not_negative")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowTables {
    live_schema: String,
    schema: String,
    relaxed: RelaxedChecks,
}

/// The checks dropped while replaying, with their definitions as the live
/// tables have them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelaxedChecks(Vec<(&'static str, &'static str, String)>);

impl RelaxedChecks {
    /// Reads the definitions from the tables of `schema`.
    pub(crate) async fn read(conn: &mut PgConnection, schema: &str) -> Result<Self, StoreError> {
        let mut checks = Vec::with_capacity(RELAXED_WHILE_REPLAYING.len());
        for (table, constraint) in RELAXED_WHILE_REPLAYING {
            let definition = sqlx::query_file_scalar!(
                "sql/relaxed_check_definition.sql",
                format!("{schema}.{table}"),
                constraint
            )
            .fetch_one(&mut *conn)
            .await?;
            checks.push((table, constraint, definition));
        }
        Ok(Self(checks))
    }

    pub(crate) async fn drop_from(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), StoreError> {
        for (table, constraint, _) in &self.0 {
            sqlx::query(&format!(
                "ALTER TABLE {schema}.{table} DROP CONSTRAINT {constraint}"
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Puts the checks back; fails if the replayed rows break one (which
    /// would mean the events themselves do).
    pub(crate) async fn restore_into(
        &self,
        conn: &mut PgConnection,
        schema: &str,
    ) -> Result<(), StoreError> {
        for (table, constraint, definition) in &self.0 {
            sqlx::query(&format!(
                "ALTER TABLE {schema}.{table} ADD CONSTRAINT {constraint} {definition}"
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The schema of the live read-model tables (where the migrations put them).
pub(crate) async fn live_schema(conn: &mut PgConnection) -> Result<String, StoreError> {
    let schema = sqlx::query_file_scalar!("sql/live_schema.sql")
        .fetch_optional(&mut *conn)
        .await?;
    schema.ok_or_else(|| {
        StoreError::Internal("table store_orders does not exist: run the migrations first".into())
    })
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
        let live_schema = live_schema(&mut *conn).await?;
        let relaxed = RelaxedChecks::read(&mut *conn, &live_schema).await?;
        let shadow = Self {
            live_schema,
            schema,
            relaxed,
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
        // Primary keys now: the projection's upserts need them. Everything
        // else waits for `complete`, after the bulk load (cheaper to build
        // an index once than to maintain it row by row).
        let looked_up: Vec<String> = LOOKED_UP_WHILE_REPLAYING
            .iter()
            .map(|t| shadow.live(t))
            .collect();
        shadow.copy_constraints(&mut tx, "p", &looked_up).await?;
        shadow.relaxed.drop_from(&mut tx, &shadow.schema).await?;
        shadow.copy_owner_and_grants(&mut tx).await?;
        tx.commit().await?;
        Ok(shadow)
    }

    /// Gives the shadow tables the rest of the live tables' keys and
    /// indexes (the relaxed checks come back with [`Self::restore_checks`],
    /// after the last event is replayed).
    pub async fn complete(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        sqlx::query("SET LOCAL search_path TO pg_catalog")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL maintenance_work_mem TO '128MB'")
            .execute(&mut *tx)
            .await?;
        // Unique keys before foreign keys (a foreign key needs its target's key).
        let insert_only: Vec<String> = READ_MODEL_TABLES
            .iter()
            .filter(|t| !LOOKED_UP_WHILE_REPLAYING.contains(t))
            .map(|t| self.live(t))
            .collect();
        let every = self.live_tables();
        self.copy_constraints(&mut tx, "p", &insert_only).await?;
        self.copy_constraints(&mut tx, "u", &every).await?;
        self.copy_constraints(&mut tx, "f", &every).await?;
        let indexes = sqlx::query_file_scalar!("sql/table_indexes.sql", &self.live_tables())
            .fetch_all(&mut *tx)
            .await?;
        for definition in indexes {
            sqlx::query(&self.to_shadow(&definition))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Copies the constraints of `kind` (`p`, `u`, `f`: pg_constraint's
    /// contype) of the live `tables` to their shadows.
    async fn copy_constraints(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        tables: &[String],
    ) -> Result<(), StoreError> {
        let constraints = sqlx::query_file!("sql/table_constraints.sql", tables, kind)
            .fetch_all(&mut *conn)
            .await?;
        for constraint in constraints {
            sqlx::query(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                self.to_shadow(&constraint.table),
                constraint.name,
                self.to_shadow(&constraint.definition)
            ))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The swapped-in tables must be usable by whoever used the old ones:
    /// same owner (when we may set it), same grants.
    async fn copy_owner_and_grants(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        for table in READ_MODEL_TABLES {
            let owner = sqlx::query_file!("sql/table_owner.sql", self.live(table))
                .fetch_one(&mut *conn)
                .await?;
            if owner.may_assign {
                sqlx::query(&format!(
                    "ALTER TABLE {} OWNER TO {}",
                    self.qualified(table),
                    owner.owner
                ))
                .execute(&mut *conn)
                .await?;
            }
            let grants = sqlx::query_file!("sql/table_grants.sql", self.live(table))
                .fetch_all(&mut *conn)
                .await?;
            for grant in grants {
                sqlx::query(&format!(
                    "GRANT {} ON {} TO {}",
                    grant.privilege,
                    self.qualified(table),
                    grant.grantee
                ))
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// Puts back the checks relaxed while replaying.
    pub async fn restore_checks(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        self.relaxed.restore_into(conn, &self.schema).await
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

    /// On a Citus cluster, before the swap: distributes the loaded shadow
    /// tables by tenant, colocated with `events` like the live ones (the
    /// delegated write path runs on the workers and writes the tenant's
    /// shards; a local read model would be out of its reach). Each table
    /// in a transaction of its own, referenced tables first.
    pub async fn distribute(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        for table in READ_MODEL_TABLES {
            sqlx::query(
                "SELECT create_distributed_table($1::regclass, 'tenant_id', colocate_with => 'events')",
            )
            .bind(self.qualified(table))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
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
