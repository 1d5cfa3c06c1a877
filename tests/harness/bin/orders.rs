//! The `orders` command line, built into this package so that tests can run
//! it as a process (`CARGO_BIN_EXE_orders-under-test`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    order_client::cli::main().await
}
