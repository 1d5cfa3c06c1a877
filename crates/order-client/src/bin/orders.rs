//! `orders`: check out, look at and list orders from a terminal; follow the
//! events the relay publishes.
//!
//! Reads the service URL from `ORDERS_URL` (default http://127.0.0.1:8080)
//! and the bearer token from `ORDERS_TOKEN`; `events tail` reads `NATS_URL`.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use order_client::order_api::{CheckoutLine, OrderStatus};
use order_client::OrdersClient;

#[derive(Debug, Parser)]
#[command(
    name = "orders",
    version,
    about = "A store-orders client: checkout safe to retry."
)]
struct Cli {
    #[arg(long, env = "ORDERS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, env = "ORDERS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Place an order: `orders checkout DOG-FOOD-3KG:2 CHEW-TOY:1`.
    Checkout {
        /// SKU:QUANTITY, one per line of the order.
        #[arg(required = true, value_parser = parse_line)]
        lines: Vec<CheckoutLine>,
        #[arg(long)]
        note: Option<String>,
        /// Reuse this Idempotency-Key (to retry an earlier checkout by hand).
        #[arg(long)]
        key: Option<String>,
    },
    /// Show one order.
    Get { id: uuid::Uuid },
    /// List orders, newest first.
    List {
        #[arg(long, value_parser = parse_status)]
        status: Option<OrderStatus>,
        #[arg(long, default_value_t = 20)]
        limit: u16,
        #[arg(long)]
        after: Option<String>,
    },
    /// The events the relay publishes to NATS JetStream (docs/EVENTS.md).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print events as they arrive, one JSON line each (a durable consumer:
    /// started again with the same --durable, it continues where it stopped).
    Tail {
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "ORDERS_RELAY_STREAM", default_value = "ORDER_EVENTS")]
        stream: String,
        /// Only these subjects: orders.{tenant}.{kind}.{EventType}, with
        /// NATS wildcards, e.g. `orders.demo.order.>`.
        #[arg(long, default_value = "orders.>")]
        subject: String,
        #[arg(long, default_value = "orders-tail")]
        durable: String,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
}

fn parse_line(text: &str) -> Result<CheckoutLine, String> {
    let (sku, quantity) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: write lines as SKU:QUANTITY, e.g. DOG-FOOD-3KG:2"))?;
    let quantity = quantity
        .parse()
        .map_err(|_| format!("{text:?}: the quantity must be a whole number"))?;
    Ok(CheckoutLine {
        sku: sku.to_owned(),
        quantity,
    })
}

fn parse_status(text: &str) -> Result<OrderStatus, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("{text:?}: one of placed, paid, shipped, cancelled"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Events {
        command:
            EventsCommand::Tail {
                nats_url,
                stream,
                subject,
                durable,
                limit,
            },
    } = cli.command
    {
        let options = order_client::events::Tail {
            nats_url,
            stream,
            durable,
            subject,
            limit,
        };
        order_client::events::tail(&options, &mut std::io::stdout().lock()).await?;
        return Ok(());
    }
    let token = cli.token.context(
        "set ORDERS_TOKEN (or --token): a bearer token, e.g. from `order-service token`",
    )?;
    let client = OrdersClient::new(&cli.url, &token).context("ORDERS_URL")?;
    match cli.command {
        Command::Checkout { lines, note, key } => {
            let placed = match key {
                Some(key) => {
                    client
                        .checkout_with_key(&key, &lines, note.as_deref())
                        .await
                }
                None => client.checkout(&lines, note.as_deref()).await,
            };
            match placed {
                Ok(placed) => {
                    eprintln!(
                        "{} order {} (Idempotency-Key {}, {} attempt(s))",
                        if placed.replayed {
                            "replayed"
                        } else {
                            "placed"
                        },
                        placed.order.order_number,
                        placed.idempotency_key,
                        placed.attempts
                    );
                    println!("{}", serde_json::to_string_pretty(&placed.order)?);
                }
                Err(e) => bail!("checkout failed: {e}"),
            }
        }
        Command::Get { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&client.get_order(id).await?)?
            );
        }
        Command::List {
            status,
            limit,
            after,
        } => {
            let page = client
                .list_orders(status, Some(limit), after.as_deref())
                .await?;
            println!("{}", serde_json::to_string_pretty(&page)?);
        }
        Command::Events { .. } => {}
    }
    Ok(())
}
