use std::sync::Arc;

use axum::extract::FromRef;

use metrics_exporter_prometheus::PrometheusHandle;
use order_store::{
    AbandonmentLimit, CatalogueCommands, CatalogueQueries, GroupCommit, GroupCommitSettings,
    OrderCommands, OrderQueries, StoreProbe, UnpaidLimit,
};
use sqlx::PgPool;

use crate::auth::JwtKeys;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store's health, for `/readyz` and `/metrics`.
    pub store: StoreProbe,
    pub orders: Arc<OrderCommands>,
    pub catalogue: Arc<CatalogueCommands>,
    pub order_queries: OrderQueries,
    pub catalogue_queries: CatalogueQueries,
    pub keys: JwtKeys,
    pub metrics: PrometheusHandle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(pool: PgPool, keys: JwtKeys) -> Self {
        Self::with_abandonment_limit(pool, keys, AbandonmentLimit::default())
    }

    /// As [`AppState::new`], with this bound on a customer's abandoned
    /// checkouts.
    pub fn with_abandonment_limit(
        pool: PgPool,
        keys: JwtKeys,
        abandonment_limit: AbandonmentLimit,
    ) -> Self {
        Self::configured(
            pool,
            keys,
            abandonment_limit,
            UnpaidLimit::DEFAULT,
            Some(GroupCommitSettings::default()),
        )
    }

    /// As [`AppState::with_abandonment_limit`], with these bounds on a
    /// customer's unpaid orders, and appends stored by group commit with
    /// these settings (started on the current runtime), or each alone (None).
    pub fn configured(
        pool: PgPool,
        keys: JwtKeys,
        abandonment_limit: AbandonmentLimit,
        unpaid_limit: UnpaidLimit,
        group_commit: Option<GroupCommitSettings>,
    ) -> Self {
        let mut orders = OrderCommands::new(pool.clone())
            .with_abandonment_limit(abandonment_limit)
            .with_unpaid_limit(unpaid_limit);
        let mut catalogue = CatalogueCommands::new(pool.clone());
        if let Some(settings) = group_commit {
            let writers = GroupCommit::start(pool.clone(), settings);
            orders = orders.with_group_commit(writers.clone());
            catalogue = catalogue.with_group_commit(writers);
        }
        Self {
            orders: Arc::new(orders),
            catalogue: Arc::new(catalogue),
            order_queries: OrderQueries::new(pool.clone()),
            catalogue_queries: CatalogueQueries::new(pool.clone()),
            keys,
            metrics: crate::metrics::prometheus(),
            store: StoreProbe::new(pool),
        }
    }
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}
