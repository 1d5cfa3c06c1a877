//! The `order-service` command line: serve the API, migrate (and
//! distribute) the database, mint dev tokens, seed the demo tenant.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{parse_duration, DatabaseConfig, ServeConfig};
use crate::telemetry::{init_tracing, LogFormat};
use crate::{app, serve, AppState, Role};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use order_domain::TenantId;
use sqlx::migrate::MigrateDatabase;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    name = "order-service",
    version,
    about = "Checkout that is safe to retry."
)]
struct Cli {
    /// PostgreSQL URL of the service's database.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Log as text or JSON lines.
    #[arg(
        long,
        env = "ORDERS_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (applies migrations first unless told not to).
    Serve(ServeArgs),
    /// Create the database if missing and apply the migrations.
    Migrate,
    /// Distribute the migrated schema over a Citus cluster: run against the
    /// coordinator, as the schema owner, after `migrate` (safe to repeat;
    /// docs/SCALE-OUT.md).
    Distribute,
    /// Mint a token signed with the service's secret (for development).
    Token(TokenArgs),
    /// Define the demo tenant's products and stock (safe to repeat).
    SeedDemo {
        #[arg(long, default_value = "demo")]
        tenant: String,
    },
    /// Publish every committed event to NATS JetStream, once (docs/EVENTS.md).
    /// Several may run; one publishes, the others stand by.
    Relay(RelayArgs),
}

#[derive(Debug, Args)]
struct RelayArgs {
    #[arg(long, env = "NATS_URL", default_value = order_relay::RelayConfig::DEFAULT_NATS_URL)]
    nats_url: String,
    /// The JetStream stream (created if missing, subjects `orders.>`).
    #[arg(long, env = "ORDERS_RELAY_STREAM", default_value = order_relay::RelayConfig::DEFAULT_STREAM)]
    stream: String,
    /// The relay's checkpoint and lock name (default: the stream's name).
    /// One per JetStream stream and database node.
    #[arg(long, env = "ORDERS_RELAY_NAME")]
    name: Option<String>,
    /// Where /readyz and /metrics are served.
    #[arg(long, env = "ORDERS_RELAY_BIND", default_value = order_relay::RelayConfig::DEFAULT_BIND)]
    bind: SocketAddr,
    /// How long JetStream de-duplicates a message id (must cover a restart
    /// or takeover; applies when the stream is created).
    #[arg(long, env = "ORDERS_RELAY_DUPLICATE_WINDOW", default_value = "10m", value_parser = parse_duration)]
    duplicate_window: Duration,
    /// Events published at once.
    #[arg(long, env = "ORDERS_RELAY_BATCH", default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch: i64,
    /// On a Citus cluster: publish only the events born on these nodes
    /// (Citus group ids, `SELECT groupid, nodename, nodeport FROM
    /// pg_dist_node`; 0 is the coordinator), e.g. `1,2`. Default: every
    /// node. Each node's events are led by one relay of the name at a time.
    #[arg(long, env = "ORDERS_RELAY_GROUPS", value_delimiter = ',', value_parser = clap::value_parser!(i32).range(0..=32_767))]
    groups: Option<Vec<i32>>,
    /// When the stream is missing although this relay published into it
    /// (it was deleted): publish every event again, from the first, into a
    /// new stream. Without it the relay refuses to start.
    #[arg(long, env = "ORDERS_RELAY_REPUBLISH_FROM_START", default_value_t = false, action = clap::ArgAction::Set)]
    republish_from_start: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "ORDERS_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    #[command(flatten)]
    secret: SecretArgs,
    #[arg(long, env = "ORDERS_DB_POOL_SIZE", default_value_t = 16)]
    db_pool_size: u32,
    /// How long a request waits for a database connection before a 503.
    #[arg(long, env = "ORDERS_DB_ACQUIRE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    db_acquire_timeout: Duration,
    /// Longest a request may take (503 with Retry-After beyond).
    #[arg(long, env = "ORDERS_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    #[arg(long, env = "ORDERS_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Longest wait for a request's head: bounds slow clients and idle
    /// kept-alive connections alike.
    #[arg(long, env = "ORDERS_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_timeout: Duration,
    /// Most HTTP connections open at once (keep it below `ulimit -n`).
    #[arg(long, env = "ORDERS_MAX_CONNECTIONS", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Longest an answer may wait for the client to read it: a client that
    /// pipelines requests and never reads is disconnected.
    #[arg(long, env = "ORDERS_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    write_timeout: Duration,
    /// Most requests answered on one connection (the last says
    /// `Connection: close`; pipelined requests after it are not read).
    #[arg(long, env = "ORDERS_MAX_REQUESTS_PER_CONNECTION", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests_per_connection: u32,
    /// Writers storing appends by group commit (appends that arrive while
    /// they are busy are stored together, one transaction per batch); 0:
    /// every append its own transaction.
    #[arg(long, env = "ORDERS_WRITERS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=64))]
    writers: u32,
    /// Most appends in one group-commit batch.
    #[arg(long, env = "ORDERS_MAX_BATCH", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_batch: u32,
    /// Most checkouts one customer may abandon per minute (429 beyond).
    #[arg(long, env = "ORDERS_ABANDON_LIMIT", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    abandon_limit: u32,
    /// Most open unpaid orders one customer may have (409 /unpaid-limit
    /// beyond; a replay of an order is never refused).
    #[arg(long, env = "ORDERS_UNPAID_ORDERS", default_value_t = order_store::UnpaidLimit::DEFAULT.orders, value_parser = clap::value_parser!(u32).range(1..))]
    unpaid_orders: u32,
    /// Most units one customer's open unpaid orders may hold together.
    #[arg(long, env = "ORDERS_UNPAID_UNITS", default_value_t = order_store::UnpaidLimit::DEFAULT.units, value_parser = clap::value_parser!(u32).range(1..))]
    unpaid_units: u32,
    /// How long an order may stay unpaid: older ones expire, their stock
    /// going back (every replica runs the sweeper; each order expires once).
    #[arg(long, env = "ORDERS_UNPAID_EXPIRY", default_value = "30m", value_parser = parse_duration)]
    unpaid_expiry: Duration,
    /// How often each replica looks for unpaid orders past that time.
    #[arg(long, env = "ORDERS_EXPIRY_SWEEP", default_value = "15s", value_parser = parse_duration)]
    expiry_sweep: Duration,
    /// Do not apply migrations at start (env: 1, true, yes or on).
    #[arg(long, env = "ORDERS_SKIP_MIGRATIONS", value_parser = clap::builder::FalseyValueParser::new())]
    skip_migrations: bool,
    /// Apply the migrations at start over this URL (the schema owner's),
    /// and serve over DATABASE_URL (a role with only the service's rights;
    /// README, "Database roles"). Unset: migrate over DATABASE_URL.
    #[arg(long, env = "ORDERS_MIGRATION_DATABASE_URL", hide_env_values = true)]
    migration_database_url: Option<String>,
}

/// Where the HS256 secret (at least 32 bytes) comes from: the environment
/// (`ORDERS_JWT_SECRET`) or a file (`ORDERS_JWT_SECRET_FILE`, e.g. a
/// mounted secret; one trailing newline ignored). Never a command-line
/// argument: anyone on the machine can read those in the process list.
#[derive(Debug, Args)]
struct SecretArgs {
    /// A file holding the HS256 secret (else ORDERS_JWT_SECRET is read).
    #[arg(long = "jwt-secret-file", env = "ORDERS_JWT_SECRET_FILE")]
    jwt_secret_file: Option<std::path::PathBuf>,
    /// Require (and mint) this `iss` claim.
    #[arg(long = "jwt-issuer", env = "ORDERS_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Require (and mint) this `aud` claim.
    #[arg(long = "jwt-audience", env = "ORDERS_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
}

impl SecretArgs {
    /// The signing keys, from the file or the environment.
    fn keys(&self) -> anyhow::Result<crate::JwtKeys> {
        let secret = match &self.jwt_secret_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading the JWT secret from {} (ORDERS_JWT_SECRET_FILE)", path.display())
                })?;
                text.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text)
                    .to_owned()
            }
            None => std::env::var("ORDERS_JWT_SECRET").map_err(|_| {
                anyhow::anyhow!(
                    "no JWT secret: set ORDERS_JWT_SECRET (at least 32 bytes) or ORDERS_JWT_SECRET_FILE"
                )
            })?,
        };
        Ok(ServeConfig::jwt_keys(&secret)
            .context("the JWT secret is unusable")?
            .with_issuer_and_audience(self.jwt_issuer.clone(), self.jwt_audience.clone()))
    }
}

#[derive(Debug, Args)]
struct TokenArgs {
    #[arg(long)]
    tenant: String,
    /// The customer id (or staff member id).
    #[arg(long)]
    sub: String,
    #[arg(long, value_enum, default_value = "customer")]
    role: RoleArg,
    /// Lifetime, e.g. 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    ttl: Duration,
    #[command(flatten)]
    secret: SecretArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Customer,
    Staff,
}

/// [`main`] for a process: an error is printed as one line with its
/// causes (never a backtrace, whatever `RUST_BACKTRACE` says: an operator
/// reads it) and the exit code is 1.
pub async fn main_with_exit_code() -> std::process::ExitCode {
    match main().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole command line: parses the process's arguments and runs the
/// subcommand.
pub async fn main() -> anyhow::Result<()> {
    main_with_args(std::env::args_os()).await
}

/// As [`main`], with explicit arguments (the first is the program name).
pub async fn main_with_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_tracing(cli.log_format);
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig {
                bind: args.bind,
                database: database_config(cli.database_url, &args)?,
                keys: args.secret.keys()?,
                request_timeout: args.request_timeout,
                shutdown_grace: args.shutdown_grace,
                migrate_on_start: !args.skip_migrations,
                migration_url: args.migration_database_url.clone(),
                log_format: cli.log_format,
                connections: crate::ServeOptions {
                    header_timeout: args.header_timeout,
                    max_connections: args.max_connections as usize,
                    write_timeout: args.write_timeout,
                    max_requests_per_connection: args.max_requests_per_connection as usize,
                },
                abandonment_limit: order_store::AbandonmentLimit {
                    most: args.abandon_limit,
                    ..order_store::AbandonmentLimit::default()
                },
                unpaid_limit: order_store::UnpaidLimit {
                    orders: args.unpaid_orders,
                    units: args.unpaid_units,
                },
                unpaid_expiry: order_store::UnpaidExpiry {
                    after: args.unpaid_expiry,
                    every: args.expiry_sweep.max(Duration::from_millis(10)),
                    ..order_store::UnpaidExpiry::default()
                },
                group_commit: (args.writers > 0).then_some(order_store::GroupCommitSettings {
                    writers: args.writers as usize,
                    max_batch: args.max_batch as usize,
                }),
            };
            run(config).await
        }
        Command::Migrate => {
            let url = require_url(cli.database_url)?;
            migrate(&url).await
        }
        Command::Distribute => {
            let url = require_url(cli.database_url)?;
            distribute(&url).await
        }
        Command::Token(args) => {
            let keys = args.secret.keys()?;
            let tenant = TenantId::try_from(args.tenant.as_str()).context("--tenant")?;
            let role = match args.role {
                RoleArg::Customer => Role::Customer,
                RoleArg::Staff => Role::Staff,
            };
            let ttl = chrono::Duration::from_std(args.ttl).context("--ttl is too long")?;
            println!(
                "{}",
                keys.mint(&tenant, &args.sub, role, ttl)
                    .context("minting the token")?
            );
            Ok(())
        }
        Command::Relay(args) => {
            let url = require_url(cli.database_url)?;
            let name = args.name.unwrap_or_else(|| args.stream.clone());
            if args.stream.is_empty()
                || !args
                    .stream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("ORDERS_RELAY_STREAM must be a JetStream stream name: letters, digits, '_' and '-'");
            }
            if args.duplicate_window < Duration::from_secs(1) {
                bail!("ORDERS_RELAY_DUPLICATE_WINDOW must be at least 1s");
            }
            let config = order_relay::RelayConfig {
                database_url: url,
                nats_url: args.nats_url,
                stream: args.stream,
                name,
                bind: args.bind,
                duplicate_window: args.duplicate_window,
                batch_size: args.batch,
                groups: args.groups,
                idle_poll: Duration::from_millis(50),
                lock_retry: Duration::from_secs(1),
                ack_timeout: Duration::from_secs(5),
                republish_from_start: args.republish_from_start,
            };
            order_relay::run(config, shutdown_signal()).await
        }
        Command::SeedDemo { tenant } => {
            let url = require_url(cli.database_url)?;
            let tenant = TenantId::try_from(tenant.as_str()).context("--tenant")?;
            let pool = sqlx::PgPool::connect(&url)
                .await
                .with_context(|| format!("connecting to {}", redact(&url)))?;
            crate::seed::seed_demo(&pool, &tenant)
                .await
                .context("seeding the demo tenant (did `migrate` run?)")?;
            println!(
                "demo tenant {tenant} seeded: {} products",
                crate::seed::DEMO_PRODUCTS.len()
            );
            Ok(())
        }
    }
}

fn require_url(url: Option<String>) -> anyhow::Result<String> {
    url.context("set DATABASE_URL (or --database-url), e.g. postgres://postgres:postgres@127.0.0.1:5432/store_orders")
}

fn database_config(url: Option<String>, args: &ServeArgs) -> anyhow::Result<DatabaseConfig> {
    if args.db_pool_size == 0 {
        bail!("--db-pool-size must be at least 1");
    }
    Ok(DatabaseConfig {
        url: require_url(url)?,
        pool_size: args.db_pool_size,
        acquire_timeout: args.db_acquire_timeout,
        statement_timeout: args.request_timeout,
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    if !sqlx::Postgres::database_exists(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?
    {
        sqlx::Postgres::create_database(url)
            .await
            .with_context(|| format!("creating the database of {}", redact(url)))?;
        tracing::info!("created the database");
    }
    let pool = sqlx::PgPool::connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    let applied = order_store::migrate(&pool)
        .await
        .context("applying migrations")?;
    if applied == 0 {
        tracing::info!("schema up to date");
    } else {
        tracing::info!(applied, "migrations applied");
    }
    pool.close().await;
    Ok(())
}

async fn distribute(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    let done = order_store::distribute(&mut conn).await?;
    for table in &done.distributed {
        tracing::info!(table, "distributed by tenant_id");
    }
    for table in &done.already {
        tracing::info!(table, "already distributed");
    }
    tracing::info!(
        functions = done.functions.len(),
        "write-path functions delegated by p_tenant"
    );
    Ok(())
}

async fn run(config: ServeConfig) -> anyhow::Result<()> {
    if config.migrate_on_start {
        migrate(
            config
                .migration_url
                .as_deref()
                .unwrap_or(&config.database.url),
        )
        .await?;
    }
    let pool = config.database.pool().context("DATABASE_URL")?;
    warn_if_privileged(&pool).await;
    let state = AppState::configured(
        pool.clone(),
        config.keys.clone(),
        config.abandonment_limit,
        config.unpaid_limit,
        config.group_commit,
    );
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {} (is the service already running?)", config.bind))?;
    tracing::info!(address = %listener.local_addr()?, "serving");
    let sweeper = tokio::spawn(order_store::run_unpaid_expiry(
        pool.clone(),
        std::sync::Arc::clone(&state.orders),
        config.unpaid_expiry,
    ));
    let grace = config.shutdown_grace;
    let served = serve(
        listener,
        app(state, config.request_timeout),
        config.connections,
        shutdown_signal(),
    );
    // After the signal, in-flight requests get `grace` to finish.
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let result = served.await;
        let _ = drained_tx.send(());
        result
    });
    tokio::select! {
        result = server => result.context("server task")?.context("serving")?,
        () = async {
            shutdown_signal().await;
            tokio::time::sleep(grace).await;
            let _ = drained_rx.await;
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish in time");
        }
    }
    sweeper.abort();
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Says so when the service runs with rights it should not have: as a
/// superuser, or as a member of the role that owns `events` (which could
/// disable the append-only trigger or truncate the history).
async fn warn_if_privileged(pool: &sqlx::PgPool) {
    let probe = order_store::StoreProbe::new(pool.clone());
    if let Ok(true) = probe.runs_privileged().await {
        tracing::warn!(
            "serving as a superuser or as the owner of the event store: it could disable \
             the append-only trigger; serve as a member of the database's application role \
             (<database>_service) instead \
             (README, \"Database roles\")"
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
