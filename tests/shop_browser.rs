//! The checkout page in a real browser (headless Chromium over WebDriver)
//! against the real service and a real PostgreSQL: the client side of
//! idempotency. A double click, a lost answer, a reload in flight: one
//! order each time. An answer lost while the shop stays down, then a
//! changed cart (after a reload, in a reopened tab): the first order, found
//! and shown, and nothing ordered twice. A key abandoned while its request
//! is on its way: no order. A second tab: the same checkout, locked. Out of
//! stock: in words. SKUs named like JavaScript's own properties: ordinary.
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
    shop_of(10, faults).await
}

async fn shop_of(stock: i64, faults: Faults) -> (TestApp, CheckoutProxy, Browser) {
    let (app, token) = shop(stock).await;
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

/// The key of the checkout in progress, as the page keeps it (localStorage,
/// per tenant and customer).
async fn pending_key(client: &Client) -> Option<String> {
    let pending = client
        .execute(
            "const name = Object.keys(localStorage).find((k) => k.endsWith(':checkout')); \
             return name ? localStorage.getItem(name) : null;",
            vec![],
        )
        .await
        .unwrap();
    let pending: Value = serde_json::from_str(pending.as_str()?).ok()?;
    pending["key"].as_str().map(str::to_owned)
}

/// Waits until the element `css` is there.
async fn shown(client: &Client, css: &str, seconds: u64) {
    client
        .wait()
        .at_most(Duration::from_secs(seconds))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is not shown: {e}"));
}

/// Waits until the status says `words`; the status.
async fn status_saying(client: &Client, words: &str, seconds: u64) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = status(client).await;
        if now.contains(words) {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the status never said {words:?}; it says {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SKUs in the cart, as shown.
async fn cart_skus(client: &Client) -> Vec<String> {
    let mut skus = Vec::new();
    for item in client.find_all(Locator::Css("#cart li")).await.unwrap() {
        skus.push(item.attr("data-sku").await.unwrap().unwrap_or_default());
    }
    skus
}

async fn is_disabled(client: &Client, css: &str) -> bool {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .attr("disabled")
        .await
        .unwrap()
        .is_some()
}

/// The events of every key, in order: what the store says happened.
async fn events_by_key(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT idempotency_key, event_type FROM events \
         WHERE aggregate_type = 'Order' AND idempotency_key IS NOT NULL ORDER BY position",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
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
async fn a_503_is_retried_with_backoff_then_check_again_reuses_the_key() {
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
    // Six attempts with backoff, then the page keeps the attempt and says
    // its outcome is unknown.
    shown(client, "#pending:not([hidden]) #check-again", 40).await;
    assert_eq!(
        proxy.checkouts.load(Ordering::SeqCst),
        6,
        "a bounded number of attempts"
    );
    assert!(status(client).await.contains("Check again"));
    assert!(orders_in_db(&app).await.is_empty());
    // Nothing was recorded for the key: checking again sends it again.
    click(client, "check-again").await;
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
    // The same cart: the page asks what became of the key, and finds the
    // order without sending the checkout again.
    click(client, "place-order").await;
    let number = placed(client).await;
    let keys = proxy.keys();
    assert_eq!(keys, vec![key.clone()], "one checkout request in all");
    assert_eq!(orders_in_db(&app).await, vec![(number, key)]);
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 9);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_stock_is_said_in_words_and_a_changed_cart_gets_a_new_key_and_its_order() {
    let (app, proxy, browser) = shop_of(2, Faults::default()).await;
    let client = &browser.client;
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
    let refused_key = the_one_key(&proxy);
    assert_eq!(
        pending_key(client).await,
        None,
        "a refusal of the only request with the key settles it: nothing stored"
    );
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

// --- the answer is lost and the shop stays down -------------------------------

/// Places DOG-FOOD x 2 through a proxy that loses the answer after the commit
/// and then stays down, and waits until the page gives up. The committed
/// order's key.
async fn lost_while_down(app: &TestApp, proxy: &CheckoutProxy, client: &Client) -> String {
    add(client, "DOG-FOOD", 2).await;
    click(client, "place-order").await;
    // While the outcome is open, the cart cannot change, and says why.
    assert!(is_disabled(client, "#products li[data-sku='CHEW-TOY'] button.add").await);
    assert!(is_disabled(client, "#cart li[data-sku='DOG-FOOD'] input").await);
    assert!(is_disabled(client, "#place-order").await);
    shown(client, "#cart-lock:not([hidden])", 5).await;
    // Six attempts, five of them against a shop that is down.
    shown(client, "#pending:not([hidden]) #check-again", 60).await;
    assert!(status(client).await.contains("do not know yet"));
    assert_eq!(proxy.lost.load(Ordering::SeqCst), 1);
    let key = the_one_key(proxy);
    assert_eq!(pending_key(client).await.as_deref(), Some(key.as_str()));
    let orders = orders_in_db(app).await;
    assert_eq!(orders.len(), 1, "the first attempt committed");
    assert_eq!(orders[0].1, key);
    key
}

/// The person adds a chew toy and presses "Place order": the page settles the
/// unresolved key first, finds its order, shows it, keeps the changed cart
/// as a new cart and orders nothing more; ordering that cart takes a press
/// of its own, after the person has seen the first order.
async fn a_changed_cart_finds_the_first_order_and_orders_nothing_more(
    app: &TestApp,
    proxy: &CheckoutProxy,
    client: &Client,
    key: &str,
) {
    add(client, "CHEW-TOY", 1).await;
    click(client, "place-order").await;
    let number = placed(client).await;
    let said = status_saying(client, "was placed", 30).await;
    assert!(
        said.contains(&number) && said.contains("has not been ordered"),
        "{said}"
    );
    let orders = orders_in_db(app).await;
    assert_eq!(
        orders,
        vec![(number.clone(), key.to_owned())],
        "exactly one order"
    );
    assert_eq!(
        events_by_key(app).await,
        vec![(key.to_owned(), "OrderPlaced".to_owned())],
        "settling found the order: nothing abandoned, nothing placed"
    );
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 8);
    assert_eq!(pending_key(client).await, None, "the key is settled");
    shown(client, "#cart-new:not([hidden])", 5).await;
    assert_eq!(cart_skus(client).await, ["CHEW-TOY", "DOG-FOOD"]);
    assert_eq!(proxy.keys(), vec![key.to_owned()], "no checkout was sent");
    // My orders shows it too.
    shown(client, "#orders li[data-order]", 10).await;
    // The kept cart is a new checkout, with a new key, on another press.
    click(client, "place-order").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while orders_in_db(app).await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the kept cart was not ordered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys = proxy.keys();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[1], key, "a new key for the new cart");
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_lost_while_the_shop_stays_down_then_a_changed_cart_makes_no_second_order() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        lose_checkouts: 1,
        down_after_lost: true,
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    let key = lost_while_down(&app, &proxy, client).await;
    proxy.come_back();
    a_changed_cart_finds_the_first_order_and_orders_nothing_more(&app, &proxy, client, &key).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_after_a_reload_the_unresolved_checkout_is_resumed_with_its_key() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        lose_checkouts: 1,
        down_after_lost: true,
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    let key = lost_while_down(&app, &proxy, client).await;
    proxy.come_back();
    client.refresh().await.unwrap();
    shown(client, "#pending:not([hidden])", 15).await;
    shown(
        client,
        "#products li[data-sku='CHEW-TOY'] button.add:not([disabled])",
        15,
    )
    .await;
    assert_eq!(pending_key(client).await.as_deref(), Some(key.as_str()));
    assert!(status(client).await.contains("may have gone through"));
    a_changed_cart_finds_the_first_order_and_orders_nothing_more(&app, &proxy, client, &key).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_with_the_tab_closed_and_reopened() {
    let (app, token) = shop(10).await;
    let proxy = CheckoutProxy::start(
        app.address,
        Faults {
            lose_checkouts: 1,
            down_after_lost: true,
            ..Faults::default()
        },
    )
    .await;
    let browser = Browser::start().await;
    let client = &browser.client;
    open(client, &proxy.url(), &token).await;
    let key = lost_while_down(&app, &proxy, client).await;
    proxy.come_back();
    // A new tab, then the old one closed: only the shared storage is left.
    let reopened = client.new_window(true).await.unwrap();
    client.close_window().await.unwrap();
    client.switch_to_window(reopened.handle).await.unwrap();
    open(client, &proxy.url(), &token).await;
    shown(client, "#pending:not([hidden])", 15).await;
    assert_eq!(pending_key(client).await.as_deref(), Some(key.as_str()));
    assert_eq!(cart_skus(client).await, ["DOG-FOOD"], "the cart came back");
    a_changed_cart_finds_the_first_order_and_orders_nothing_more(&app, &proxy, client, &key).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_abandoned_while_its_request_is_on_its_way_places_nothing_and_the_next_press_a_new_order(
) {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        delay_checkouts: Duration::from_secs(3),
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    add(client, "DOG-FOOD", 1).await;
    click(client, "place-order").await;
    let key = pending_key(client).await.expect("the page made a key");
    // Support (or the customer's other device) settles the key while the
    // request is still on its way.
    let abandoned = app
        .http
        .post(format!("{}/v1/checkouts/{key}/abandon", app.base_url))
        .bearer_auth(app.customer("acme", "cust-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(abandoned.status(), 200);
    let said = status_saying(client, "settled without an order", 30).await;
    assert!(said.contains("nothing was ordered"), "{said}");
    assert_eq!(pending_key(client).await, None);
    assert!(orders_in_db(&app).await.is_empty(), "no order");
    assert_eq!(
        events_by_key(&app).await,
        vec![(key.clone(), "CheckoutAbandoned".to_owned())]
    );
    assert_eq!(app.on_hand("acme", "DOG-FOOD").await, 10);
    assert_eq!(cart_skus(client).await, ["DOG-FOOD"], "the cart is kept");
    // The next press is a new checkout, with a new key.
    click(client, "place-order").await;
    let number = placed(client).await;
    let orders = orders_in_db(&app).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].0, number);
    assert_ne!(orders[0].1, key);
    assert_eq!(proxy.keys().len(), 2);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_tab_sees_the_checkout_in_progress_locked_and_its_outcome() {
    let (app, proxy, browser) = shop_behind_proxy(Faults {
        hold_checkouts: Duration::from_secs(3),
        ..Faults::default()
    })
    .await;
    let client = &browser.client;
    let first = client.window().await.unwrap();
    add(client, "DOG-FOOD", 1).await;
    click(client, "place-order").await;
    let key = pending_key(client).await.expect("a key");
    let second = client.new_window(true).await.unwrap();
    client
        .switch_to_window(second.handle.clone())
        .await
        .unwrap();
    let token = app.customer("acme", "cust-1");
    open(client, &proxy.url(), &token).await;
    shown(client, "#cart-lock:not([hidden])", 5).await;
    let lock = client
        .find(Locator::Id("cart-lock"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(lock.contains("another tab"), "{lock}");
    assert!(is_disabled(client, "#place-order").await);
    assert!(is_disabled(client, "#products li[data-sku='CHEW-TOY'] button.add").await);
    assert_eq!(pending_key(client).await.as_deref(), Some(key.as_str()));
    // The first tab hears its answer; the second learns it from the storage.
    status_saying(client, "settled in another tab", 20).await;
    assert!(cart_skus(client).await.is_empty());
    client.switch_to_window(first).await.unwrap();
    placed(client).await;
    assert_eq!(proxy.keys(), vec![key.clone()]);
    assert_eq!(orders_in_db(&app).await.len(), 1);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skus_named_like_javascripts_own_properties_are_ordinary_products() {
    let app = TestApp::spawn().await;
    for sku in ["constructor", "__proto__", "toString"] {
        app.product("acme", sku, 1_000, 5).await;
    }
    app.product("acme", "DOG-FOOD", 125_000, 5).await;
    let token = app.customer("acme", "cust-1");
    let browser = Browser::start().await;
    let client = &browser.client;
    open(client, &app.base_url, &token).await;
    for sku in ["constructor", "__proto__", "toString"] {
        add(client, sku, 2).await;
    }
    client.refresh().await.unwrap();
    shown(client, "#cart li[data-sku='constructor']", 15).await;
    assert_eq!(
        cart_skus(client).await,
        ["__proto__", "constructor", "toString"],
        "kept across a reload"
    );
    click(client, "place-order").await;
    placed(client).await;
    let lines: Vec<(String, i32)> =
        sqlx::query_as("SELECT sku, quantity FROM store_order_items ORDER BY sku")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        lines,
        vec![
            ("__proto__".to_owned(), 2),
            ("constructor".to_owned(), 2),
            ("toString".to_owned(), 2)
        ]
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_for_another_account_asks_first_and_a_broken_link_says_so() {
    let (app, token) = shop(10).await;
    let other = app.customer("acme", "cust-2");
    let browser = Browser::start().await;
    let client = &browser.client;
    open(client, &app.base_url, &token).await;
    add(client, "DOG-FOOD", 1).await;
    let who = || async {
        client
            .find(Locator::Id("who"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(who().await.starts_with("cust-1"));
    // A link of another account: asked first, and staying keeps all.
    client
        .goto(&format!("{}/shop#token={other}", app.base_url))
        .await
        .unwrap();
    shown(client, "#switch-account:not([hidden])", 10).await;
    let question = client
        .find(Locator::Id("switch-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        question.contains("cust-2") && question.contains("cust-1"),
        "{question}"
    );
    assert!(
        who().await.starts_with("cust-1"),
        "nothing switched before the answer"
    );
    click(client, "switch-no").await;
    assert!(who().await.starts_with("cust-1"));
    assert_eq!(cart_skus(client).await, ["DOG-FOOD"]);
    // Asked again, and switching: the other customer's own (empty) cart.
    client
        .goto(&format!("{}/shop#token={other}", app.base_url))
        .await
        .unwrap();
    shown(client, "#switch-account:not([hidden])", 10).await;
    click(client, "switch-yes").await;
    shown(client, "#switch-account[hidden]", 10).await;
    assert!(who().await.starts_with("cust-2"));
    assert!(cart_skus(client).await.is_empty(), "carts are per customer");
    // A link whose token cannot be read: a message, not a blank page.
    client
        .goto(&format!("{}/shop#token=not.a-token", app.base_url))
        .await
        .unwrap();
    shown(client, "#notice:not([hidden])", 10).await;
    let notice = client
        .find(Locator::Id("notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("not valid"), "{notice}");
    assert!(
        who().await.starts_with("cust-2"),
        "still signed in as before"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_left_unpaid_past_the_deadline_shows_as_expired_in_my_orders() {
    let (app, token) = shop(10).await;
    let order = app
        .checkout(
            &token,
            "k-unpaid",
            serde_json::json!({ "lines": [{ "sku": "DOG-FOOD", "quantity": 3 }] }),
        )
        .await;
    assert_eq!(order.status(), 201);
    let id = order.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let commands = order_store::OrderCommands::new(app.db.pool.clone());
    let an_hour_later = chrono::Utc::now() + chrono::Duration::hours(1);
    let sweep = order_store::expire_unpaid_orders(
        &app.db.pool,
        &commands,
        &order_store::UnpaidExpiry::default(),
        an_hour_later,
    )
    .await
    .unwrap();
    assert_eq!(sweep.expired, 1);
    let browser = Browser::start().await;
    let client = &browser.client;
    open(client, &app.base_url, &token).await;
    let item = format!("#orders li[data-order='{id}']");
    shown(client, &item, 15).await;
    let text = client
        .find(Locator::Css(&item))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(" · expired · "), "{text}");
    browser.close().await;
}
