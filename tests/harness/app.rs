//! The real service, in-process, on a random port, against a fresh database.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Duration as Ttl;
use order_domain::TenantId;
use order_service::{app, serve, AppState, JwtKeys, Role, ServeOptions};
use order_store::{AbandonmentLimit, GroupCommitSettings, UnpaidLimit};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::TestDatabase;

pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The bounds on unpaid orders the storm tests run with: raised through
/// configuration (as an operator would), so that one customer may place
/// thousands of orders it never pays. Tests of the bounds set their own.
pub const STORM_UNPAID_LIMIT: UnpaidLimit = UnpaidLimit {
    orders: 1_000_000_000,
    units: u32::MAX,
};

/// How to start the app under test.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub pool_size: u32,
    pub acquire_timeout: Duration,
    pub request_timeout: Duration,
    /// Reach PostgreSQL through this address (e.g. a fault-injecting proxy).
    pub connect_via: Option<SocketAddr>,
    /// Connection bounds of the HTTP server.
    pub serve: ServeOptions,
    /// The bound on a customer's abandoned checkouts.
    pub abandonment_limit: AbandonmentLimit,
    /// The bounds on a customer's unpaid orders.
    pub unpaid_limit: UnpaidLimit,
    /// Group commit's writers and batch bound (None: each append alone).
    pub group_commit: Option<GroupCommitSettings>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connect_via: None,
            serve: ServeOptions::default(),
            abandonment_limit: AbandonmentLimit::default(),
            unpaid_limit: STORM_UNPAID_LIMIT,
            group_commit: Some(GroupCommitSettings::default()),
        }
    }
}

#[derive(Debug)]
pub struct TestApp {
    pub db: TestDatabase,
    pub address: SocketAddr,
    pub base_url: String,
    pub keys: JwtKeys,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A server of the app over a database, on a random port.
struct Server {
    address: SocketAddr,
    base_url: String,
    keys: JwtKeys,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(db: &TestDatabase, options: AppOptions) -> Self {
        order_client::install_tls_provider();
        let mut connect = db.service_options().await;
        if let Some(via) = options.connect_via {
            // In the clear: a fault-injecting proxy reads the protocol.
            connect = connect
                .host(&via.ip().to_string())
                .port(via.port())
                .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .unwrap();
        let keys = JwtKeys::new(SECRET.as_bytes()).unwrap();
        let state = AppState::configured(
            pool,
            keys.clone(),
            options.abandonment_limit,
            options.unpaid_limit,
            options.group_commit,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, rx) = oneshot::channel::<()>();
        let router = app(state, options.request_timeout);
        let task = tokio::spawn(async move {
            let _ = serve(listener, router, options.serve, async {
                let _ = rx.await;
            })
            .await;
        });
        Self {
            address,
            base_url: format!("http://{address}"),
            keys,
            shutdown,
            task,
        }
    }
}

/// A server of the app over `pool` (e.g. a Citus coordinator's), on a
/// random port; stops when dropped.
pub async fn serve_over(pool: sqlx::PgPool) -> Replica {
    order_client::install_tls_provider();
    let keys = JwtKeys::new(SECRET.as_bytes()).unwrap();
    let state = storm_state(pool, keys);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, rx) = oneshot::channel::<()>();
    let router = app(state, Duration::from_secs(10));
    tokio::spawn(async move {
        let _ = serve(listener, router, ServeOptions::default(), async {
            let _ = rx.await;
        })
        .await;
    });
    Replica {
        base_url: format!("http://{address}"),
        _shutdown: shutdown,
    }
}

/// A second server over a [`TestApp`]'s database (stops when dropped).
#[derive(Debug)]
pub struct Replica {
    pub base_url: String,
    _shutdown: oneshot::Sender<()>,
}

/// The service's router over `db`, without a socket, for `oneshot` calls.
pub async fn router(db: &TestDatabase) -> axum::Router {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(db.service_options().await)
        .await
        .unwrap();
    let keys = JwtKeys::new(SECRET.as_bytes()).unwrap();
    app(storm_state(pool, keys), Duration::from_secs(10))
}

/// The app's state as a service configured for the storm tests would have
/// it: group commit, [`STORM_UNPAID_LIMIT`].
fn storm_state(pool: sqlx::PgPool, keys: JwtKeys) -> AppState {
    AppState::configured(
        pool,
        keys,
        AbandonmentLimit::default(),
        STORM_UNPAID_LIMIT,
        Some(GroupCommitSettings::default()),
    )
}

/// A token signed with [`SECRET`].
pub fn token_for(tenant: &str, subject: &str, role: Role) -> String {
    JwtKeys::new(SECRET.as_bytes())
        .unwrap()
        .mint(
            &TenantId::try_from(tenant).unwrap(),
            subject,
            role,
            Ttl::hours(1),
        )
        .unwrap()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(AppOptions::default()).await
    }

    pub async fn spawn_with(options: AppOptions) -> Self {
        let db = TestDatabase::new().await;
        let server = Server::start(&db, options).await;
        Self {
            db,
            address: server.address,
            base_url: server.base_url,
            keys: server.keys,
            http: reqwest::Client::new(),
            shutdown: Some(server.shutdown),
            server: Some(server.task),
        }
    }

    /// Another replica of the service over this app's database: its own
    /// pool, caches and port, as a second process would have.
    pub async fn replica(&self) -> Replica {
        self.replica_with(AppOptions::default()).await
    }

    /// [`Self::replica`], configured with `options`.
    pub async fn replica_with(&self, options: AppOptions) -> Replica {
        let server = Server::start(&self.db, options).await;
        Replica {
            base_url: server.base_url,
            _shutdown: server.shutdown,
        }
    }

    /// Signals a graceful shutdown (what SIGTERM does to the binary).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the server has drained and stopped.
    pub async fn stopped(&mut self) {
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    pub fn token(&self, tenant: &str, subject: &str, role: Role) -> String {
        self.keys
            .mint(
                &TenantId::try_from(tenant).unwrap(),
                subject,
                role,
                Ttl::hours(1),
            )
            .unwrap()
    }

    pub fn customer(&self, tenant: &str, subject: &str) -> String {
        self.token(tenant, subject, Role::Customer)
    }

    pub fn staff(&self, tenant: &str) -> String {
        self.token(tenant, "staff-1", Role::Staff)
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(token)
    }

    pub async fn checkout(&self, token: &str, key: &str, body: Value) -> Response {
        self.request(Method::POST, "/v1/checkout", token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str) -> Response {
        self.request(Method::POST, path, token)
            .send()
            .await
            .unwrap()
    }

    /// Defines `sku` at `price` PYG in `tenant` and books `stock` units.
    pub async fn product(&self, tenant: &str, sku: &str, price: i64, stock: i64) {
        define_product(&self.http, &self.base_url, tenant, sku, price, stock).await;
    }

    pub async fn on_hand(&self, tenant: &str, sku: &str) -> i64 {
        crate::fixtures::on_hand(&self.db.pool, tenant, sku).await
    }
}

/// Defines `sku` at `price` PYG in `tenant` and books `stock` units, over
/// HTTP as staff, on the service at `base_url`.
pub async fn define_product(
    http: &reqwest::Client,
    base_url: &str,
    tenant: &str,
    sku: &str,
    price: i64,
    stock: i64,
) {
    let staff = token_for(tenant, "staff-1", Role::Staff);
    let defined = http
        .put(format!("{base_url}/v1/products/{sku}"))
        .bearer_auth(&staff)
        .json(&serde_json::json!({"name": format!("Product {sku}"), "unit_price": price, "currency": "PYG"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        defined.status(),
        StatusCode::OK,
        "{}",
        defined.text().await.unwrap()
    );
    if stock > 0 {
        let stocked = http
            .post(format!("{base_url}/v1/products/{sku}/stock"))
            .bearer_auth(&staff)
            .header(
                "idempotency-key",
                format!("stock-{sku}-{stock}-{}", uuid::Uuid::new_v4()),
            )
            .json(&serde_json::json!({"delta": stock, "reason": "received"}))
            .send()
            .await
            .unwrap();
        assert_eq!(stocked.status(), StatusCode::CREATED);
    }
}

/// Reads a response as JSON, asserting its status.
pub async fn json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a problem document: status, content type, `type` slug, and the
/// members every problem has. Returns it for further checks.
pub async fn problem(response: Response, status: StatusCode, slug: &str) -> Value {
    let actual = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    assert_eq!(content_type, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    assert!(request_id.is_some(), "x-request-id on every response");
    assert_eq!(body["request_id"].as_str(), request_id.as_deref(), "{body}");
    body
}
