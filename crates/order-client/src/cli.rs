//! The `orders` command line (`bin/orders.rs` runs it): check out, look at and list orders from a terminal; settle a
//! checkout whose answer never came; follow the events the relay publishes.
//!
//! Reads the service URL from `ORDERS_URL` (default http://127.0.0.1:8080)
//! and the bearer token from `ORDERS_TOKEN`; `events tail` reads `NATS_URL`.
//!
//! Every checkout ends in a known outcome, or says how to reach one: when
//! neither the checkout nor settling its key got an answer, the key is
//! printed with the commands that settle it later, saved (see
//! `order_client::unsettled`), and the exit code is 75 (EX_TEMPFAIL: outcome unknown,
//! key saved). Exit codes: 0 done, 1 refused or failed, 75 outcome unknown.

use std::process::ExitCode;

use crate::{unsettled, ClientError, OrdersClient};
use anyhow::Context;
use clap::{Parser, Subcommand};
use order_api::{CheckoutLine, CheckoutState, CheckoutStatus, OrderStatus};

/// The service's URL when none is given.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Outcome unknown, key saved (sysexits.h EX_TEMPFAIL).
const OUTCOME_UNKNOWN: u8 = 75;

#[derive(Debug, Parser)]
#[command(
    name = "orders",
    version,
    about = "A store-orders client: checkout safe to retry."
)]
struct Cli {
    #[arg(long, env = "ORDERS_URL", default_value = DEFAULT_URL)]
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
    /// What became of the checkout made with KEY: placed (and its order),
    /// abandoned, or nothing recorded yet (exit 75).
    CheckoutStatus {
        /// The checkout's Idempotency-Key.
        key: String,
    },
    /// Settle the checkout made with KEY for good: its order if it was
    /// placed, else no order will ever be placed with KEY.
    Abandon {
        /// The checkout's Idempotency-Key.
        key: String,
    },
    /// The checkouts whose outcome is unknown, kept since they got no
    /// answer, with the commands that settle them.
    Unsettled,
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

/// Runs the command line with the process's arguments.
pub async fn main() -> ExitCode {
    main_with_args(std::env::args_os()).await
}

/// As [`main`], with explicit arguments (the first is the program name).
pub async fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
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
        let options = crate::events::Tail {
            nats_url,
            stream,
            durable,
            subject,
            limit,
        };
        crate::events::tail(&options, &mut std::io::stdout().lock()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let token = cli.token.context(
        "set ORDERS_TOKEN (or --token): a bearer token, e.g. from `order-service token`",
    )?;
    let client = OrdersClient::new(&cli.url, &token).context("ORDERS_URL")?;
    let settle = Settle { url: &cli.url };
    match cli.command {
        Command::Checkout { lines, note, key } => {
            let placed = match &key {
                Some(key) => client.checkout_with_key(key, &lines, note.as_deref()).await,
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
                    settle.forget(&placed.idempotency_key);
                    println!("{}", serde_json::to_string_pretty(&placed.order)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(ClientError::NotPlaced {
                    idempotency_key,
                    checkout,
                    ..
                }) => {
                    eprintln!(
                        "not placed, and it never will be: the service did not answer the \
                         checkout, so its Idempotency-Key {idempotency_key} was abandoned \
                         (nothing was ordered). Run the checkout again to try anew."
                    );
                    println!("{}", serde_json::to_string_pretty(&checkout)?);
                    Ok(ExitCode::FAILURE)
                }
                Err(e) if e.outcome_unknown() => {
                    let key = match (&e, key) {
                        (
                            ClientError::OutcomeUnknown {
                                idempotency_key, ..
                            },
                            _,
                        ) => idempotency_key.clone(),
                        (_, Some(key)) => key,
                        (_, None) => return Err(e).context("checkout failed"),
                    };
                    Ok(settle.unknown(&e, &key, &lines, note.as_deref()))
                }
                Err(e) => Err(e).context("checkout failed"),
            }
        }
        Command::CheckoutStatus { key } => match client.checkout_status(&key).await {
            Ok(Some(checkout)) => Ok(settle.known(&checkout)?),
            Ok(None) => {
                eprintln!(
                    "nothing is recorded for Idempotency-Key {key} yet: a checkout still in \
                     flight may place it. To settle it for good: {}",
                    settle.command("abandon", &key)
                );
                Ok(ExitCode::from(OUTCOME_UNKNOWN))
            }
            Err(e) if e.outcome_unknown() => {
                eprintln!("outcome still unknown: {e}");
                Ok(ExitCode::from(OUTCOME_UNKNOWN))
            }
            Err(e) => Err(e).context("checkout-status failed"),
        },
        Command::Abandon { key } => match client.abandon_checkout(&key).await {
            Ok(checkout) => Ok(settle.known(&checkout)?),
            Err(e) if e.outcome_unknown() => {
                eprintln!(
                    "outcome still unknown: {e}. Try again later: {}",
                    settle.command("abandon", &key)
                );
                Ok(ExitCode::from(OUTCOME_UNKNOWN))
            }
            Err(e) => Err(e).context("abandon failed"),
        },
        Command::Unsettled => {
            let kept = unsettled::list().context("reading the saved keys")?;
            if kept.is_empty() {
                eprintln!("no checkout with an unknown outcome is kept");
            }
            for checkout in kept {
                let settle = Settle { url: &checkout.url };
                println!(
                    "{}\t{}\t{}",
                    checkout.idempotency_key,
                    settle.command("checkout-status", &checkout.idempotency_key),
                    settle.command("abandon", &checkout.idempotency_key)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&client.get_order(id).await?)?
            );
            Ok(ExitCode::SUCCESS)
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Events { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// Reporting outcomes, and keeping the keys whose outcome is unknown.
struct Settle<'a> {
    url: &'a str,
}

impl Settle<'_> {
    /// `orders [--url URL] SUBCOMMAND KEY`, ready to paste into a shell.
    fn command(&self, subcommand: &str, key: &str) -> String {
        let url = if self.url == DEFAULT_URL {
            String::new()
        } else {
            format!("--url {} ", shell_word(self.url))
        };
        format!("orders {url}{subcommand} {}", shell_word(key))
    }

    /// Says what became of a key, prints it, and forgets the saved key.
    fn known(&self, checkout: &CheckoutStatus) -> anyhow::Result<ExitCode> {
        match (&checkout.state, &checkout.order) {
            (CheckoutState::Placed, Some(order)) => eprintln!(
                "placed: order {} (Idempotency-Key {})",
                order.order_number, checkout.idempotency_key
            ),
            (CheckoutState::Abandoned, _) => eprintln!(
                "abandoned: nothing was ordered with Idempotency-Key {}, and nothing ever will be",
                checkout.idempotency_key
            ),
            (state, _) => eprintln!("{state:?} (a state this client does not know)"),
        }
        self.forget(&checkout.idempotency_key);
        println!("{}", serde_json::to_string_pretty(checkout)?);
        Ok(ExitCode::SUCCESS)
    }

    fn forget(&self, key: &str) {
        if let Err(e) = unsettled::forget(key) {
            eprintln!("(could not remove the saved key: {e})");
        }
    }

    /// Neither the checkout nor settling it got an answer: the key, the
    /// commands that settle it, and where it is kept.
    fn unknown(
        &self,
        error: &ClientError,
        key: &str,
        lines: &[CheckoutLine],
        note: Option<&str>,
    ) -> ExitCode {
        match error {
            ClientError::OutcomeUnknown { .. } => eprintln!("{error}"),
            _ => eprintln!("outcome unknown: {error}"),
        }
        eprintln!(
            "The checkout may or may not have been placed. Its Idempotency-Key is {key}; do \
             not order the same thing again under a new key before you know."
        );
        match unsettled::save(self.url, key, lines, note) {
            Ok(path) => eprintln!("Saved in {}.", path.display()),
            Err(e) => eprintln!("(could not save the key: {e}; note it down)"),
        }
        let lines: Vec<String> = lines
            .iter()
            .map(|l| shell_word(&format!("{}:{}", l.sku, l.quantity)))
            .collect();
        eprintln!("When the service answers again:");
        eprintln!(
            "  what became of it:   {}",
            self.command("checkout-status", key)
        );
        eprintln!("  settle it for good:  {}", self.command("abandon", key));
        eprintln!(
            "  or send it again:    {} {}",
            self.command("checkout --key", key),
            lines.join(" ")
        );
        ExitCode::from(OUTCOME_UNKNOWN)
    }
}

/// `text` as one shell word.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/=+@%,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
