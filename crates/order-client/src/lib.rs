//! A typed client of store-orders: the counterpart of a checkout page.
//!
//! [`OrdersClient::checkout`] makes one Idempotency-Key (a UUIDv4) per
//! checkout and sends it on every retry of that checkout, so a timeout, a
//! dropped connection or a 503 can be retried without ever placing a second
//! order: the service answers a retry of a committed checkout with the same
//! order and `Idempotent-Replayed: true`.
//!
//! Every checkout ends in a known outcome. When its retries run out without
//! a final answer, `checkout` settles the key itself
//! (`POST /v1/checkouts/{key}/abandon`): the answer is the order (it was
//! placed after all) or [`ClientError::NotPlaced`] (it was not, and now
//! never will be). Only when settling gets no answer either does it say
//! [`ClientError::OutcomeUnknown`], with the key, to settle later
//! ([`OrdersClient::abandon_checkout`], `orders abandon KEY`).
//! [`OrdersClient::checkout_with_key`] is for callers that keep their key
//! across their own restarts and retry it later: it never abandons.
//!
//! Retries: on connection errors, timeouts, 429 and 5xx, with exponential
//! backoff and full jitter, bounded in attempts and in total time (see
//! [`RetryPolicy`]). Never on another 4xx: out of stock, validation and key
//! reuse are final answers.
//!
//! # Layout
//! - `lib.rs`: [`OrdersClient`] and its calls.
//! - `retry.rs`: [`RetryPolicy`]: what is retried, and when.
//! - `events.rs`: [`events::tail`]: a durable JetStream consumer of the
//!   events the relay publishes.
//! - `unsettled.rs`: checkouts whose outcome is unknown, kept on disk until
//!   they are settled (the CLI's).
//! - `cli.rs`: the `orders` command line (`bin/orders.rs` runs it): a
//!   checkout that ends in a known outcome or saves its key (exit 75),
//!   `checkout-status`, `abandon`, `unsettled`, orders, `events tail`.

pub mod cli;
pub mod events;
mod retry;
pub mod unsettled;

use std::time::Duration;

use order_api::{
    CheckoutLine, CheckoutRequest, CheckoutState, CheckoutStatus, Order, OrderList, OrderStatus,
    Problem, Product, ProductDefinition, ProductList, StockAdjustmentRequest, StockReason,
};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use order_api;
pub use retry::RetryPolicy;

/// Selects ring as the process's TLS provider (the one the rest of the
/// workspace uses) unless one is installed already. Any `reqwest::Client`
/// built in this process needs it; [`OrdersClient`] calls it itself.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a call failed, after any retries.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service answered with a problem (a final answer, or the last one
    /// when retries ran out).
    #[error("{status}: {}", problem.detail.as_deref().unwrap_or("(no detail)"))]
    Problem {
        status: StatusCode,
        problem: Box<Problem>,
    },
    /// No answer: connection refused or cut, or a timeout, on every attempt.
    #[error("no answer from the service after {attempts} attempt(s): {source}")]
    Unreachable {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// An answer this client cannot read.
    #[error("unexpected answer ({status}): {reason}")]
    UnexpectedAnswer { status: StatusCode, reason: String },
    /// The checkout's retries ran out without an answer, so the client
    /// settled its key: nothing was ordered, and no request with the key
    /// will ever order anything. Safe to start again with a new key.
    #[error(
        "not placed, and it never will be: no answer after {attempts} attempt(s), so Idempotency-Key {idempotency_key} was abandoned"
    )]
    NotPlaced {
        idempotency_key: String,
        attempts: u32,
        checkout: Box<CheckoutStatus>,
    },
    /// Nobody knows yet whether the checkout was placed: it got no final
    /// answer, and neither did settling its key. Settle it later with
    /// [`OrdersClient::checkout_status`] or
    /// [`OrdersClient::abandon_checkout`]; never start the same intent
    /// again under a new key before that.
    #[error(
        "outcome unknown for Idempotency-Key {idempotency_key}: {checkout}; settling it failed too: {settling}"
    )]
    OutcomeUnknown {
        idempotency_key: String,
        /// Why the checkout had no final answer.
        checkout: Box<ClientError>,
        /// Why settling it had none.
        settling: Box<ClientError>,
    },
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The problem kind, when the service answered with one of its problems.
    pub fn problem_kind(&self) -> Option<order_api::ProblemKind> {
        match self {
            Self::Problem { problem, .. } => order_api::ProblemKind::of(problem),
            _ => None,
        }
    }

    /// True when the request may have done its work without the caller
    /// hearing of it: no answer at all, or only answers that say "try
    /// again" (429, 5xx) until the retries ran out.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::OutcomeUnknown { .. } => true,
            Self::Problem { status, .. } => RetryPolicy::retries_status(*status),
            _ => false,
        }
    }
}

/// A checkout's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    pub order: Order,
    /// True when the service found the order placed by an earlier attempt
    /// with the same key (e.g. one whose answer was lost).
    pub replayed: bool,
    pub idempotency_key: String,
    /// How many requests it took.
    pub attempts: u32,
}

/// A client of one service, with one bearer token.
#[derive(Debug, Clone)]
pub struct OrdersClient {
    http: reqwest::Client,
    base_url: String,
    token: String,
    retry: RetryPolicy,
}

/// What one request returned: status, headers we care about, body.
struct Answer {
    status: StatusCode,
    replayed: bool,
    body: Vec<u8>,
    attempts: u32,
}

impl OrdersClient {
    /// `base_url` like `http://127.0.0.1:8080`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Self::with_policy(base_url, token, RetryPolicy::default())
    }

    pub fn with_policy(
        base_url: &str,
        token: &str,
        retry: RetryPolicy,
    ) -> Result<Self, ClientError> {
        install_tls_provider();
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "{base_url:?} is not an http(s) URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(retry.request_timeout)
            .connect_timeout(retry.request_timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Self {
            http,
            base_url,
            token: token.to_owned(),
            retry,
        })
    }

    /// Places an order: a fresh Idempotency-Key, reused on every retry;
    /// when the retries run out without a final answer, the key is settled
    /// (see the crate's documentation): the order, [`ClientError::NotPlaced`],
    /// or, only when settling got no answer, [`ClientError::OutcomeUnknown`].
    pub async fn checkout(
        &self,
        lines: &[CheckoutLine],
        note: Option<&str>,
    ) -> Result<PlacedOrder, ClientError> {
        let key = Uuid::new_v4().to_string();
        let failed = match self.checkout_with_key(&key, lines, note).await {
            Err(failed) if failed.outcome_unknown() => failed,
            answered => return answered,
        };
        tracing::debug!(%key, error = %failed, "no final answer; settling the key");
        let attempts = match &failed {
            ClientError::Unreachable { attempts, .. } => *attempts,
            _ => self.retry.max_attempts,
        };
        match self.abandon_checkout(&key).await {
            Ok(checkout) => match (checkout.state, &checkout.order) {
                (CheckoutState::Placed, Some(order)) => Ok(PlacedOrder {
                    order: order.clone(),
                    replayed: true,
                    idempotency_key: key,
                    attempts,
                }),
                (CheckoutState::Abandoned, _) => Err(ClientError::NotPlaced {
                    idempotency_key: key,
                    attempts,
                    checkout: Box::new(checkout),
                }),
                (state, _) => Err(ClientError::OutcomeUnknown {
                    idempotency_key: key,
                    checkout: Box::new(failed),
                    settling: Box::new(ClientError::UnexpectedAnswer {
                        status: StatusCode::OK,
                        reason: format!("a checkout state this client cannot act on: {state:?}"),
                    }),
                }),
            },
            Err(settling) => Err(ClientError::OutcomeUnknown {
                idempotency_key: key,
                checkout: Box::new(failed),
                settling: Box::new(settling),
            }),
        }
    }

    /// What became of the checkout made with `idempotency_key`: placed
    /// (with its order) or abandoned; `None` when nothing is recorded for
    /// it (not an outcome: a request in flight may still place it).
    pub async fn checkout_status(
        &self,
        idempotency_key: &str,
    ) -> Result<Option<CheckoutStatus>, ClientError> {
        let url = self.checkout_url(idempotency_key, false)?;
        match decode(
            self.send(|| self.request_url(Method::GET, url.clone()))
                .await?,
        ) {
            Err(e) if e.problem_kind() == Some(order_api::ProblemKind::CheckoutNotFound) => {
                Ok(None)
            }
            answer => answer.map(Some),
        }
    }

    /// Settles the checkout made with `idempotency_key` for good: its order
    /// if one was placed (nothing changes), else the abandonment, after
    /// which no checkout with the key will ever place one. Safe to repeat.
    pub async fn abandon_checkout(
        &self,
        idempotency_key: &str,
    ) -> Result<CheckoutStatus, ClientError> {
        let url = self.checkout_url(idempotency_key, true)?;
        decode(
            self.send(|| self.request_url(Method::POST, url.clone()))
                .await?,
        )
    }

    /// `/v1/checkouts/{key}[/abandon]`, the key as one path segment; for
    /// `.` and `..`, which cannot be one, the `?key=` form.
    fn checkout_url(&self, key: &str, abandon: bool) -> Result<Url, ClientError> {
        let mut url = Url::parse(&self.base_url).map_err(|e| ClientError::Config(e.to_string()))?;
        let query_form = matches!(key, "." | "..");
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| ClientError::Config(format!("{} cannot be a base", self.base_url)))?;
            path.pop_if_empty().extend(["v1", "checkouts"]);
            if !query_form {
                path.push(key);
            }
            if abandon {
                path.push("abandon");
            }
        }
        if query_form {
            url.query_pairs_mut().append_pair("key", key);
        }
        Ok(url)
    }

    /// Places an order under a key the caller chose (e.g. one it stored, to
    /// retry a checkout across restarts of the caller itself). Never
    /// settles the key on its own: when its retries run out, the error says
    /// so ([`ClientError::outcome_unknown`]) and the key stays usable, for
    /// a later retry or for [`OrdersClient::abandon_checkout`].
    pub async fn checkout_with_key(
        &self,
        idempotency_key: &str,
        lines: &[CheckoutLine],
        note: Option<&str>,
    ) -> Result<PlacedOrder, ClientError> {
        let body = CheckoutRequest {
            lines: lines.to_vec(),
            note: note.map(str::to_owned),
        };
        let answer = self
            .send(|| {
                self.request(Method::POST, "/v1/checkout")
                    .header(order_api::IDEMPOTENCY_KEY, idempotency_key)
                    .json(&body)
            })
            .await?;
        let (replayed, attempts) = (answer.replayed, answer.attempts);
        Ok(PlacedOrder {
            order: decode(answer)?,
            replayed,
            idempotency_key: idempotency_key.to_owned(),
            attempts,
        })
    }

    pub async fn get_order(&self, id: Uuid) -> Result<Order, ClientError> {
        decode(
            self.send(|| self.request(Method::GET, &format!("/v1/orders/{id}")))
                .await?,
        )
    }

    pub async fn list_orders(
        &self,
        status: Option<OrderStatus>,
        limit: Option<u16>,
        after: Option<&str>,
    ) -> Result<OrderList, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(status) = status {
            let text = serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            query.push(("status", text));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        decode(
            self.send(|| self.request(Method::GET, "/v1/orders").query(&query))
                .await?,
        )
    }

    /// Cancels (repeating it is harmless: the second answer is the same order).
    pub async fn cancel(&self, id: Uuid) -> Result<Order, ClientError> {
        decode(
            self.send(|| self.request(Method::POST, &format!("/v1/orders/{id}/cancel")))
                .await?,
        )
    }

    pub async fn pay(&self, id: Uuid) -> Result<Order, ClientError> {
        decode(
            self.send(|| self.request(Method::POST, &format!("/v1/orders/{id}/pay")))
                .await?,
        )
    }

    pub async fn ship(&self, id: Uuid) -> Result<Order, ClientError> {
        decode(
            self.send(|| self.request(Method::POST, &format!("/v1/orders/{id}/ship")))
                .await?,
        )
    }

    pub async fn get_product(&self, sku: &str) -> Result<Product, ClientError> {
        decode(
            self.send(|| self.request(Method::GET, &format!("/v1/products/{sku}")))
                .await?,
        )
    }

    pub async fn list_products(
        &self,
        limit: Option<u16>,
        after: Option<&str>,
    ) -> Result<ProductList, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        decode(
            self.send(|| self.request(Method::GET, "/v1/products").query(&query))
                .await?,
        )
    }

    pub async fn define_product(
        &self,
        sku: &str,
        definition: &ProductDefinition,
    ) -> Result<Product, ClientError> {
        decode(
            self.send(|| {
                self.request(Method::PUT, &format!("/v1/products/{sku}"))
                    .json(definition)
            })
            .await?,
        )
    }

    /// Books a stock movement under `idempotency_key` (one key per movement).
    pub async fn adjust_stock(
        &self,
        sku: &str,
        idempotency_key: &str,
        delta: i64,
        reason: StockReason,
    ) -> Result<(Product, bool), ClientError> {
        let body = StockAdjustmentRequest { delta, reason };
        let answer = self
            .send(|| {
                self.request(Method::POST, &format!("/v1/products/{sku}/stock"))
                    .header(order_api::IDEMPOTENCY_KEY, idempotency_key)
                    .json(&body)
            })
            .await?;
        let replayed = answer.replayed;
        Ok((decode(answer)?, replayed))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
    }

    fn request_url(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    /// Sends the request `build` makes, retrying per the policy. Every call
    /// of this client is safe to repeat (keyed, a read, or a transition that
    /// is a no-op the second time).
    async fn send(&self, build: impl Fn() -> RequestBuilder) -> Result<Answer, ClientError> {
        let mut schedule = self.retry.schedule();
        loop {
            let attempt = schedule.attempt();
            let outcome = build().send().await;
            let wait = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry::retry_after(response.headers());
                    let replayed = response
                        .headers()
                        .get(order_api::IDEMPOTENT_REPLAYED)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                    let body = match response.bytes().await {
                        Ok(body) => body.to_vec(),
                        // The answer was cut while being read: as good as none.
                        Err(e) => match schedule.next_delay(None) {
                            Some(delay) => {
                                tracing::debug!(attempt, error = %e, ?delay, "answer cut; retrying with the same key");
                                tokio::time::sleep(delay).await;
                                continue;
                            }
                            None => {
                                return Err(ClientError::Unreachable {
                                    attempts: attempt,
                                    source: e,
                                })
                            }
                        },
                    };
                    let answer = Answer {
                        status,
                        replayed,
                        body,
                        attempts: attempt,
                    };
                    if !RetryPolicy::retries_status(status) {
                        return Ok(answer);
                    }
                    match schedule.next_delay(retry_after) {
                        Some(delay) => delay,
                        None => return Ok(answer),
                    }
                }
                Err(e) => {
                    if e.is_builder() {
                        return Err(ClientError::Config(e.to_string()));
                    }
                    match schedule.next_delay(None) {
                        Some(delay) => delay,
                        None => {
                            return Err(ClientError::Unreachable {
                                attempts: attempt,
                                source: e,
                            })
                        }
                    }
                }
            };
            tracing::debug!(attempt, ?wait, "retrying with the same request");
            tokio::time::sleep(wait).await;
        }
    }
}

/// A success body as `T`; an error answer as [`ClientError::Problem`].
fn decode<T: DeserializeOwned>(answer: Answer) -> Result<T, ClientError> {
    if answer.status.is_success() {
        return serde_json::from_slice(&answer.body).map_err(|e| ClientError::UnexpectedAnswer {
            status: answer.status,
            reason: e.to_string(),
        });
    }
    match serde_json::from_slice::<Problem>(&answer.body) {
        Ok(problem) => Err(ClientError::Problem {
            status: answer.status,
            problem: Box::new(problem),
        }),
        Err(_) => Err(ClientError::UnexpectedAnswer {
            status: answer.status,
            reason: String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect(),
        }),
    }
}
