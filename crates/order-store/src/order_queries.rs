//! Reads of orders from the read model. Every query is scoped to a tenant,
//! and for a customer to their own orders: someone else's order is simply
//! not found.

use chrono::{DateTime, TimeZone, Utc};
use order_domain::{CustomerId, IdempotencyKey, OrderId, OrderStatus, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::StoreError;
use order_api::{CheckoutStatus, Order, OrderLine};

use crate::order_view::{abandoned_checkout, placed_checkout, status_of};

/// Whose orders a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderVisibility {
    /// Only this customer's.
    Customer(CustomerId),
    /// All of the tenant's (staff).
    Tenant,
}

/// Where a page of orders ends: the next page starts after it. Opaque to
/// clients (see [`OrderCursor::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderCursor {
    pub placed_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor: pass back the `next` value of a previous page unchanged")]
pub struct InvalidCursor;

impl OrderCursor {
    /// URL-safe text, e.g. for `?after=`.
    pub fn encode(&self) -> String {
        let raw = format!("{}:{}", self.placed_at.timestamp_micros(), self.id.simple());
        data_encoding::BASE64URL_NOPAD.encode(raw.as_bytes())
    }

    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let raw = data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| InvalidCursor)?;
        let raw = std::str::from_utf8(&raw).map_err(|_| InvalidCursor)?;
        let (micros, id) = raw.split_once(':').ok_or(InvalidCursor)?;
        let micros: i64 = micros.parse().map_err(|_| InvalidCursor)?;
        // Only instants an order can have: from 1970 to the end of 9999
        // (PostgreSQL cannot hold some that chrono can).
        if !(0..=Self::start().placed_at.timestamp_micros()).contains(&micros) {
            return Err(InvalidCursor);
        }
        Ok(Self {
            placed_at: Utc.timestamp_micros(micros).single().ok_or(InvalidCursor)?,
            id: Uuid::try_parse(id).map_err(|_| InvalidCursor)?,
        })
    }

    /// Sorts after every real order: the start of the first page.
    fn start() -> Self {
        Self {
            placed_at: Utc
                .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .single()
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            id: Uuid::max(),
        }
    }
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// 1 to 100.
    pub limit: u16,
    pub after: Option<OrderCursor>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    pub next: Option<OrderCursor>,
}

#[derive(Debug, Clone)]
pub struct OrderQueries {
    pool: PgPool,
}

/// A row of the order queries (`sql/find_order.sql`, `sql/list_orders_*.sql`):
/// sqlx checks at compile time that the statements' columns have these
/// names and types.
struct OrderRow {
    id: Uuid,
    order_number: String,
    status: String,
    customer_id: String,
    idempotency_key: Option<String>,
    currency: String,
    total: i64,
    note: Option<String>,
    placed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    skus: Option<Vec<String>>,
    names: Option<Vec<String>>,
    quantities: Option<Vec<i32>>,
    unit_prices: Option<Vec<i64>>,
    line_totals: Option<Vec<i64>>,
}

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;

    fn try_from(row: OrderRow) -> Result<Self, Self::Error> {
        let status: OrderStatus = row
            .status
            .parse()
            .map_err(|e| StoreError::Internal(format!("order {}: {e}", row.id)))?;
        let lines = row
            .skus
            .unwrap_or_default()
            .into_iter()
            .zip(row.names.unwrap_or_default())
            .zip(row.quantities.unwrap_or_default())
            .zip(row.unit_prices.unwrap_or_default())
            .zip(row.line_totals.unwrap_or_default())
            .map(
                |((((sku, name), quantity), unit_price), line_total)| OrderLine {
                    sku,
                    name,
                    quantity: i64::from(quantity),
                    unit_price,
                    line_total,
                },
            )
            .collect();
        Ok(Self {
            id: row.id,
            order_number: row.order_number,
            status: status_of(status),
            customer_id: row.customer_id,
            idempotency_key: row.idempotency_key,
            lines,
            currency: row.currency,
            total: row.total,
            note: row.note,
            placed_at: row.placed_at,
            updated_at: row.updated_at,
        })
    }
}

impl OrderQueries {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn find_order(
        &self,
        tenant: &TenantId,
        id: OrderId,
        visibility: &OrderVisibility,
    ) -> Result<Option<Order>, StoreError> {
        let customer = match visibility {
            OrderVisibility::Customer(c) => Some(c.as_str()),
            OrderVisibility::Tenant => None,
        };
        let row = sqlx::query_file_as!(
            OrderRow,
            "src/sql/find_order.sql",
            tenant.as_str(),
            id.as_uuid(),
            customer
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(Order::try_from).transpose()
    }

    /// What became of the checkout of (tenant, `key`), if the caller may
    /// see it: its order (the order's id is the key's, see
    /// [`OrderId::for_checkout`]), or its abandonment (a customer sees
    /// their own and those staff made: every customer's checkout with such
    /// a key is answered "abandoned" anyway). None: nothing is recorded,
    /// or nothing the caller may see.
    pub async fn find_checkout(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        visibility: &OrderVisibility,
    ) -> Result<Option<CheckoutStatus>, StoreError> {
        let id = OrderId::for_checkout(tenant, key);
        if let Some(order) = self.find_order(tenant, id, visibility).await? {
            return Ok(Some(placed_checkout(key, order)));
        }
        let abandonment = sqlx::query_file!(
            "src/sql/find_abandonment.sql",
            tenant.as_str(),
            key.as_str()
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(abandonment
            .filter(|row| match (visibility, &row.customer_id) {
                (OrderVisibility::Customer(reader), Some(owner)) => reader.as_str() == owner,
                _ => true,
            })
            .map(|row| abandoned_checkout(key, row.abandoned_at)))
    }

    pub async fn list_orders(
        &self,
        tenant: &TenantId,
        visibility: &OrderVisibility,
        filter: &OrderFilter,
    ) -> Result<OrderPage, StoreError> {
        let limit = filter.limit.clamp(1, 100);
        let statuses: Vec<String> = match filter.status {
            Some(s) => vec![s.as_str().to_owned()],
            None => OrderStatus::ALL
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        };
        let after = filter.after.unwrap_or_else(OrderCursor::start);
        let one_more = i64::from(limit) + 1;
        let mut rows = match visibility {
            OrderVisibility::Tenant => {
                sqlx::query_file_as!(
                    OrderRow,
                    "src/sql/list_orders_of_tenant.sql",
                    tenant.as_str(),
                    &statuses,
                    after.placed_at,
                    after.id,
                    one_more
                )
                .fetch_all(&self.pool)
                .await?
            }
            OrderVisibility::Customer(customer) => {
                sqlx::query_file_as!(
                    OrderRow,
                    "src/sql/list_orders_of_customer.sql",
                    tenant.as_str(),
                    &statuses,
                    after.placed_at,
                    after.id,
                    one_more,
                    customer.as_str()
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        let more = rows.len() > usize::from(limit);
        rows.truncate(usize::from(limit));
        let orders = rows
            .into_iter()
            .map(Order::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if more {
            orders.last().map(|o| OrderCursor {
                placed_at: o.placed_at,
                id: o.id,
            })
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }
}
