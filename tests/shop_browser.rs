//! The checkout page in a real browser (headless Chromium over WebDriver)
//! against the real service and a real PostgreSQL: the client side of
//! idempotency. A double click, a lost answer, a reload in flight: one
//! order each time. A changed cart: a new key. Out of stock: in words.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, Locator};
use serde_json::Value;
use store_orders_tests::browser::Browser;
use store_orders_tests::http_proxy::{CheckoutProxy, Faults};
use store_orders_tests::TestApp;

/// The shop: two products, the app, and the page's address with a token.
async fn shop(a_stock: i64) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.product("acme", "DOG-FOOD", 125_000, a_stock).await;
    app.product("acme", "CHEW-TOY", 5_000, 50).await;
    let token = app.customer("acme", "cust-1");
    (app, token)
}

async fn open(client: &Client, base: &str, token: &str) {
    client
        .goto(&format!("{base}/shop#token={token}"))
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#products li[data-sku='DOG-FOOD'] button.add"))
        .await
        .expect("the page lists the products");
}

async fn add(client: &Client, sku: &str, quantity: u32) {
    let item = format!("#products li[data-sku='{sku}']");
    let input = client
        .find(Locator::Css(&format!("{item} input.qty")))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(&quantity.to_string()).await.unwrap();
    client
        .find(Locator::Css(&format!("{item} button.add")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The shop behind a [`CheckoutProxy`] with these faults, and a browser on
/// its page.
async fn shop_behind_proxy(faults: Faults) -> (TestApp, CheckoutProxy, Browser) {
    let (app, token) = shop(10).await;
    let proxy = CheckoutProxy::start(app.address, faults).await;
    let browser = Browser::start().await;
    open(&browser.client, &proxy.url(), &token).await;
    (app, proxy, browser)
}

/// Every checkout request the proxy saw carried one and the same key: it.
fn the_one_key(proxy: &CheckoutProxy) -> String {
    let keys = proxy.keys();
    assert!(!keys.is_empty(), "no checkout reached the proxy");
    assert!(
        keys.iter().all(|key| key == &keys[0]),
        "every attempt reused the key: {keys:?}"
    );
    keys[0].clone()
}

async fn status(client: &Client) -> String {
    client
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits for the placed-order view; its order number.
async fn placed(client: &Client) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#placed:not([hidden])"))
        .await
        .expect("the placed order is shown");
    client
        .find(Locator::Id("placed-number"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn pending_key(client: &Client) -> Option<String> {
    let pending = client
        .execute("return sessionStorage.getItem('checkout');", vec![])
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(pending.as_str()?).ok()?;
    pending["key"].as_str().map(str::to_owned)
}

async fn orders_in_db(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT order_number, idempotency_key FROM store_orders ORDER BY placed_at")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_double_click_on_place_order_places_one_order_and_takes_stock_once() {
    let (app, proxy, browser) = shop_behind_proxy(Faults::default()).await;
    let client = &browser.client;
    add(client, "DOG-FOOD", 2).await;
    add(client, "CHEW-TOY", 1).await;
    let button = client.find(Locator::Id("place-order")).await.unwrap();
    let double_click = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: button,
            duration: None,
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    client.perform_actions(double_click).await.unwrap();
    let number = placed(client).await;
    assert_eq!(
        proxy.checkouts.load(Ordering::SeqCst),
        1,
        "the button is disabled while the first click's checkout is in flight"
    );
    let orders = orders_in_db(&app).await;
    assert_eq!(orders.len(), 1, "one order for a double click");
    assert_eq!(orders[0].0, number);
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 8, "one decrement");
    let channel: String = sqlx::query_scalar(
        "SELECT payload->'OrderPlaced'->>'channel' FROM events WHERE event_type = 'OrderPlaced'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(channel, "shop", "the page says where the order came from");
    assert!(status(client).await.contains(&number));
    assert_eq!(
        pending_key(client).await,
        None,
        "the key is dropped once confirmed"
    );
    // The view a customer sees, kept for a human to look at.
    let screenshot = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shop-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("placed-order.png"), &screenshot).unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkout_answer_lost_after_the_commit_is_retried_with_the_same_key_into_one_order() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        lose_checkouts: 1,
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    add(client, "DOG-FOOD", 3).await;
    click(client, "place-order").await;
    let number = placed(client).await;
    assert_eq!(proxy.lost.load(Ordering::SeqCst), 1);
    assert!(
        proxy.checkouts.load(Ordering::SeqCst) >= 2,
        "the page retried by itself"
    );
    let key = the_one_key(&proxy);
    let orders = orders_in_db(&app).await;
    assert_eq!(
        orders,
        vec![(number, key)],
        "the retry found the one committed order"
    );
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 7);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_503_is_retried_with_backoff_then_try_again_reuses_the_key() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        unavailable_checkouts: 6,
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    add(client, "CHEW-TOY", 4).await;
    let button = client.find(Locator::Id("place-order")).await.unwrap();
    button.click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#status.trying"))
        .await
        .unwrap();
    assert!(
        button.attr("disabled").await.unwrap().is_some(),
        "the button is disabled while the page retries"
    );
    // Six attempts with backoff, then the page gives the customer the key.
    client
        .wait()
        .at_most(Duration::from_secs(40))
        .for_element(Locator::Css("#try-again:not([hidden])"))
        .await
        .expect("a Try again button after the last attempt");
    assert_eq!(
        proxy.checkouts.load(Ordering::SeqCst),
        6,
        "a bounded number of attempts"
    );
    assert!(status(client).await.contains("Try again"));
    assert!(orders_in_db(&app).await.is_empty());
    click(client, "try-again").await;
    let number = placed(client).await;
    assert_eq!(proxy.checkouts.load(Ordering::SeqCst), 7);
    let key = the_one_key(&proxy);
    assert_eq!(orders_in_db(&app).await, vec![(number, key)]);
    assert_eq!(app.on_hand("acme", "CHEW-TOY").await, 46);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_while_the_checkout_is_in_flight_keeps_the_key_and_the_one_order() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        hold_checkouts: Duration::from_secs(3),
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    add(client, "DOG-FOOD", 1).await;
    click(client, "place-order").await;
    let key = pending_key(client).await.expect("a key for the checkout");
    // The order is committed, its answer held by the network; the customer
    // reloads.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(orders_in_db(&app).await.len(), 1);
    client.refresh().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#cart li[data-sku='DOG-FOOD']"))
        .await
        .expect("the cart survives the reload");
    assert_eq!(pending_key(client).await.as_deref(), Some(key.as_str()));
    assert!(status(client).await.contains("may have gone through"));
    click(client, "place-order").await;
    let number = placed(client).await;
    let keys = proxy.keys();
    assert_eq!(
        keys,
        vec![key.clone(), key.clone()],
        "before and after the reload"
    );
    assert_eq!(orders_in_db(&app).await, vec![(number, key)]);
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 9);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_stock_is_said_in_words_and_a_changed_cart_gets_a_new_key_and_its_order() {
    let (app, token) = shop(2).await;
    let browser = Browser::start().await;
    let client = &browser.client;
    open(client, &app.base_url, &token).await;
    add(client, "DOG-FOOD", 5).await;
    click(client, "place-order").await;
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("#status.error"))
        .await
        .unwrap();
    let refusal = status(client).await;
    assert!(
        refusal.contains("Only 2 of Product DOG-FOOD left") && refusal.contains("asked for 5"),
        "{refusal}"
    );
    let refused_key = pending_key(client)
        .await
        .expect("the refused checkout's key");
    assert!(
        orders_in_db(&app).await.is_empty(),
        "a refusal stores nothing"
    );
    // The customer takes what there is.
    let input = client
        .find(Locator::Css("#cart li[data-sku='DOG-FOOD'] input"))
        .await
        .unwrap();
    // As on a keyboard: select what is there, type over it, leave the field.
    input.send_keys("\u{E009}a\u{E000}2\t").await.unwrap();
    assert_eq!(
        pending_key(client).await,
        None,
        "a changed cart drops the old key"
    );
    click(client, "place-order").await;
    let number = placed(client).await;
    let orders = orders_in_db(&app).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].0, number);
    assert_ne!(orders[0].1, refused_key, "the new cart went with a new key");
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 0);
    browser.close().await;
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_policy_and_loads_nothing_from_elsewhere() {
    let app = TestApp::spawn().await;
    for (path, kind) in [
        ("/shop", "text/html"),
        ("/shop/app.js", "text/javascript"),
        ("/shop/app.css", "text/css"),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"));
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//fonts"),
            "{path} refers to another origin"
        );
        if path == "/shop/app.js" {
            assert!(body.contains("// AUDIT-106: Idempotency key"));
        }
    }
}
