//! The checkout this service replaces: one SQL transaction that inserts the
//! order and its lines and decrements stock, with a unique
//! (tenant_id, idempotency_key) index as its only duplicate guard. Run by the
//! bench itself over sqlx, on the same PostgreSQL, in its own tables.

use sqlx::PgPool;

/// Creates the baseline's tables and stocks them like the service's catalogue.
pub async fn prepare(
    pool: &PgPool,
    tenant: &str,
    skus: &[(String, i64)],
    stock: i64,
) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE baseline_products (tenant_id text, sku text, name text, unit_price bigint, \
           on_hand bigint NOT NULL CHECK (on_hand >= 0), PRIMARY KEY (tenant_id, sku)); \
         CREATE TABLE baseline_orders (id uuid PRIMARY KEY, tenant_id text NOT NULL, \
           idempotency_key text NOT NULL, customer_id text NOT NULL, total bigint NOT NULL, \
           placed_at timestamptz NOT NULL DEFAULT now()); \
         CREATE UNIQUE INDEX baseline_orders_key ON baseline_orders (tenant_id, idempotency_key); \
         CREATE TABLE baseline_order_lines (order_id uuid REFERENCES baseline_orders (id), \
           line_no int, sku text, name text, quantity int, unit_price bigint, \
           PRIMARY KEY (order_id, line_no));",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO baseline_products SELECT $1, sku, 'Product ' || sku, price, $4 \
         FROM UNNEST($2::text[], $3::bigint[]) AS p(sku, price)",
    )
    .bind(tenant)
    .bind(skus.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
    .bind(skus.iter().map(|(_, p)| *p).collect::<Vec<_>>())
    .bind(stock)
    .execute(pool)
    .await?;
    Ok(())
}

/// One plain checkout: BEGIN; insert the order (the unique index refuses a
/// duplicate key); insert its lines priced from the catalogue; decrement
/// stock, refusing to go below zero; COMMIT. Lines sorted by SKU.
pub async fn checkout(
    pool: &PgPool,
    tenant: &str,
    key: &str,
    customer: &str,
    lines: &[(String, i64)],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = uuid::Uuid::new_v4();
    let skus: Vec<&str> = lines.iter().map(|(s, _)| s.as_str()).collect();
    let quantities: Vec<i64> = lines.iter().map(|(_, q)| *q).collect();
    sqlx::query(
        "INSERT INTO baseline_orders (id, tenant_id, idempotency_key, customer_id, total) \
         SELECT $1, $2, $3, $4, sum(p.unit_price * l.quantity) \
         FROM UNNEST($5::text[], $6::bigint[]) AS l(sku, quantity) \
         JOIN baseline_products p ON p.tenant_id = $2 AND p.sku = l.sku",
    )
    .bind(id)
    .bind(tenant)
    .bind(key)
    .bind(customer)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO baseline_order_lines \
         SELECT $1, l.n, l.sku, p.name, l.quantity, p.unit_price \
         FROM UNNEST($3::text[], $4::bigint[]) WITH ORDINALITY AS l(sku, quantity, n) \
         JOIN baseline_products p ON p.tenant_id = $2 AND p.sku = l.sku",
    )
    .bind(id)
    .bind(tenant)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    let updated = sqlx::query(
        "UPDATE baseline_products p SET on_hand = p.on_hand - l.quantity \
         FROM UNNEST($2::text[], $3::bigint[]) AS l(sku, quantity) \
         WHERE p.tenant_id = $1 AND p.sku = l.sku AND p.on_hand >= l.quantity",
    )
    .bind(tenant)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != lines.len() as u64 {
        tx.rollback().await?;
        return Err(sqlx::Error::RowNotFound);
    }
    tx.commit().await
}
