//! `rebuild-projections` as an operator runs it: exit status, plain summary
//! off a terminal, `--json`, drift listing, clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use order_store::OrderCommands;
use store_orders_tests::fixtures::*;
use store_orders_tests::TestDatabase;

async fn run(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_rebuild-projections-under-test"))
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn shop() -> TestDatabase {
    let db = TestDatabase::new().await;
    stocked_product(&db.pool, "acme", "A", 1_000, 10).await;
    OrderCommands::new(db.pool.clone())
        .place_order(&as_customer("acme", "c"), checkout("c", "k", &[("A", 2)]))
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn a_rebuild_prints_a_plain_summary_off_a_terminal_and_exits_0() {
    let db = shop().await;
    let output = run(&db.url(), &[]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("swapping the rebuilt tables in"), "{text}");
    let summary = text.lines().last().unwrap();
    assert!(
        summary.starts_with("rebuilt (shadow tables swapped in): 3 events in"),
        "{summary}"
    );
    assert!(
        summary.contains("store_orders 1")
            && summary.contains("events/s")
            && summary.contains("peak RSS"),
        "{summary}"
    );
}

#[tokio::test]
async fn json_gives_a_machine_readable_summary() {
    let db = shop().await;
    let output = run(&db.url(), &["--verify", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["mode"], "verify");
    assert_eq!(summary["events"], 3);
    assert_eq!(summary["rows"]["store_orders"], 1);
    assert!(summary["events_per_second"].as_f64().unwrap() > 0.0);
    assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(summary["rows"]["store_checkout_abandonments"], 0);
    assert_eq!(
        summary["drift"].as_array().unwrap().len(),
        5,
        "one entry per read-model table"
    );
}

#[tokio::test]
async fn verify_lists_the_rows_that_differ_and_exits_1() {
    let db = shop().await;
    sqlx::query("UPDATE inventory SET on_hand = 77 WHERE sku = 'A'")
        .execute(&db.pool)
        .await
        .unwrap();
    let output = run(&db.url(), &["--verify"]).await;
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("drift in inventory: 1 row(s) only in the live table, 1 only in the rebuild"),
        "{text}"
    );
    assert!(
        text.contains("live: (acme,A,\"Product A\",1000,PYG,77,"),
        "{text}"
    );
    assert!(
        text.contains("rebuilt: (acme,A,\"Product A\",1000,PYG,8,"),
        "{text}"
    );
    assert!(text.contains("DRIFT: 2 row(s) differ"), "{text}");
}

#[tokio::test]
async fn a_bad_url_or_missing_migrations_exit_2_with_a_clear_message() {
    let output = run("postgres://postgres@127.0.0.1:1/nowhere", &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot connect to DATABASE_URL"),
        "{}",
        stderr(&output)
    );
    let bare = TestDatabase::unmigrated().await;
    let output = run(&bare.url(), &["--json"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("run `order-service migrate` first"),
        "{}",
        stderr(&output)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["ok"], false);
}
