//! The `orders` command line as a person uses it: a checkout that gets no
//! answer prints its key and the commands that settle it, saves it, and
//! exits 75; `checkout-status` and `abandon` settle it later; a checkout
//! whose answers are all lost still ends with its one order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use store_orders_tests::http_proxy::{CheckoutProxy, Faults};
use store_orders_tests::service_process::free_port;
use store_orders_tests::TestApp;
use tokio::process::Command;

const ORDERS: &str = env!("CARGO_BIN_EXE_orders-under-test");

async fn orders(url: &str, token: &str, state: &Path, args: &[&str]) -> Output {
    Command::new(ORDERS)
        .arg("--url")
        .arg(url)
        .args(args)
        .env("ORDERS_TOKEN", token)
        .env("ORDERS_STATE_DIR", state)
        .env_remove("ORDERS_URL")
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn saved_keys(state: &Path) -> Vec<String> {
    match std::fs::read_dir(state.join("unsettled-checkouts")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn state_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orders-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_checkout_with_no_answer_at_all_prints_and_saves_its_key_and_exits_75() {
    let app = TestApp::spawn().await;
    app.product("acme", "DOG-FOOD-3KG", 1_000, 10).await;
    let token = app.customer("acme", "cust-1");
    let state = state_dir();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let output = orders(&nowhere, &token, &state, &["checkout", "DOG-FOOD-3KG:1"]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("no answer from the service after 6 attempt(s)"),
        "{stderr}"
    );
    let saved = saved_keys(&state);
    assert_eq!(saved.len(), 1, "{saved:?}");
    let key = saved[0].trim_end_matches(".json").to_owned();
    assert!(uuid::Uuid::try_parse(&key).is_ok(), "{key}");
    for expected in [
        format!("Idempotency-Key is {key}"),
        format!("orders --url {nowhere} checkout-status {key}"),
        format!("orders --url {nowhere} abandon {key}"),
        format!("orders --url {nowhere} checkout --key {key} DOG-FOOD-3KG:1"),
        format!("Saved in {}", state.join("unsettled-checkouts").display()),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    let listed = orders(&nowhere, &token, &state, &["unsettled"]).await;
    assert!(text(&listed.stdout).contains(&key));

    // The service answers again: the key is settled, and forgotten.
    let status = orders(&app.base_url, &token, &state, &["checkout-status", &key]).await;
    assert_eq!(
        status.status.code(),
        Some(75),
        "nothing recorded: still unknown"
    );
    assert!(text(&status.stderr).contains("nothing is recorded"));
    let abandoned = orders(&app.base_url, &token, &state, &["abandon", &key]).await;
    assert_eq!(
        abandoned.status.code(),
        Some(0),
        "{}",
        text(&abandoned.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&abandoned.stdout).unwrap();
    assert_eq!(body["state"], "abandoned");
    assert_eq!(body["idempotency_key"], key.as_str());
    assert!(saved_keys(&state).is_empty(), "a settled key is forgotten");
    // And the very same checkout, sent late, orders nothing.
    let late = orders(
        &app.base_url,
        &token,
        &state,
        &["checkout", "--key", &key, "DOG-FOOD-3KG:1"],
    )
    .await;
    assert_eq!(late.status.code(), Some(1));
    assert!(
        text(&late.stderr).contains("abandoned"),
        "{}",
        text(&late.stderr)
    );
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 0);
    std::fs::remove_dir_all(&state).ok();
}

#[tokio::test]
async fn a_checkout_whose_answers_are_all_lost_ends_with_its_one_order() {
    let app = TestApp::spawn().await;
    app.product("acme", "DOG-FOOD-3KG", 1_000, 10).await;
    let proxy = CheckoutProxy::start(
        app.address,
        Faults {
            lose_checkouts: usize::MAX,
            ..Faults::default()
        },
    )
    .await;
    let token = app.customer("acme", "cust-1");
    let state = state_dir();
    let output = orders(
        &proxy.url(),
        &token,
        &state,
        &["checkout", "DOG-FOOD-3KG:2"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("replayed order ORD-"), "{stderr}");
    let order: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(app.db.count("SELECT count(*) FROM store_orders").await, 1);
    assert_eq!(app.on_hand("acme", "DOG-FOOD-3KG").await, 8);
    assert!(saved_keys(&state).is_empty());
    let key = order["idempotency_key"].as_str().unwrap();
    let status = orders(&app.base_url, &token, &state, &["checkout-status", key]).await;
    assert_eq!(status.status.code(), Some(0));
    let body: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(body["order"], order);
    std::fs::remove_dir_all(&state).ok();
}
